"""pytest wiring for pytest-chaos (hooks, options, markers, fixtures); logic lives in the classes it calls."""
