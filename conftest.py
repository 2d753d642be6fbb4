"""Root conftest: enables pytester for the plugin's own tests; the chaos plugin itself is loaded
through its pytest11 entry point."""

pytest_plugins = ["pytester"]
