"""Test-suite wiring: `@pytest.mark.docker` tests skip, with the reason, where no Docker engine answers.

Under CI=true they never skip: CI runs where an engine exists, so a missing one is a failure.
"""

from __future__ import annotations

import functools
import os

# pytester's in-process runs drop modules first imported inside them, and numpy (under the report
# plots) cannot be loaded twice in one process: import it once, before any inner run.
import matplotlib.figure  # noqa: F401  (imported for the side effect above)
import pytest


@functools.cache
def docker_problem() -> str | None:
    """None when a Docker engine answers a ping, else why not (shown as the skip reason)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as err:  # any failure to reach the engine means: skip, and say why
        return f"no Docker engine reachable ({type(err).__name__}: {err})"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("CI") == "true":
        return  # CI runs on a machine with an engine: a missing one must fail, not skip
    for item in items:
        if item.get_closest_marker("docker") and docker_problem():
            item.add_marker(pytest.mark.skip(reason=docker_problem()))
