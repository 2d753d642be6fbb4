"""Fault kinds. Experiments say `latency("orders -> payments", ms=800)` or `kill("payments")`.

The names re-exported here are the public fault constructors; each lives in its own module and is
listed once in faults/registry.py.
"""
