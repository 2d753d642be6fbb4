"""pytest-chaos: failure-mode experiments as pytest tests."""
