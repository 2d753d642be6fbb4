"""Example systems that pytest-chaos experiments run against."""
