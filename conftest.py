"""Root conftest: nothing global; the chaos plugin is loaded through its pytest11 entry point."""
