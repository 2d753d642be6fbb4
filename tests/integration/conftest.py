"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the local Docker engine (tests that use it are marked `docker`)."""
    client = docker.from_env(timeout=60)
    yield client
    client.close()
