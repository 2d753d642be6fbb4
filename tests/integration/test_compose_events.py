"""Lifecycle events of a real Compose project survive Docker's 256-event buffer.

Docker keeps only its last 256 events and each healthcheck adds three (the fixture checks every
500 ms), so a crash is gone from Docker's own log within seconds; the environment subscribes at
start and must still report the crash and the restart after the log has been overwritten.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import docker
import pytest

from chaos.environments.restart_policy import EventKind, recovery_times
from chaos.errors import EnvironmentFailure
from chaos.ledger import Ledger
from faults.container import RUN_LABEL, SERVICE_LABEL
from tests.fixtures.compose.support import fixture_environment, leftovers, new_run_id

pytestmark = pytest.mark.docker
NOISE_BATCH = 50  # `docker exec`s per batch: three events each (exec_create, exec_start, exec_die)
NOISE_BATCHES = 20  # bound: 3000 events, far beyond any buffer Docker keeps


def _event_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("docker-events-")]


def _logged_deaths(
    docker_client: docker.DockerClient, run_id: str, service: str, since: float
) -> int:
    """`die` events of `service` still in Docker's own log (what the old reading relied on)."""
    filters = {"type": "container", "label": f"{RUN_LABEL}={run_id}"}
    logged = docker_client.events(since=since, until=time.time(), decode=True, filters=filters)
    return sum(
        e.get("Action") == "die" and e["Actor"]["Attributes"].get(SERVICE_LABEL) == service
        for e in logged
    )


def test_a_crash_and_its_restart_outlive_dockers_event_buffer(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    run_id = new_run_id()
    with Ledger(tmp_path, run_id=run_id) as ledger:
        env = fixture_environment(run_id, tmp_path, ledger)
        with env:
            began = time.time() - 1.0
            env.lifecycle.crash("back")
            env.wait_ready("back", timeout=20)  # restarted by `restart: unless-stopped`
            assert _logged_deaths(docker_client, run_id, "back", began) == 1
            front, noise = env.lifecycle.container("front").id, time.monotonic()
            for _ in range(NOISE_BATCHES):
                for _ in range(NOISE_BATCH):
                    docker_client.api.exec_start(
                        docker_client.api.exec_create(front, ["true"]), detach=True
                    )
                if not _logged_deaths(docker_client, run_id, "back", began):
                    break
            assert not _logged_deaths(docker_client, run_id, "back", began), (
                "Docker forgot the crash"
            )
            print(f"\nDocker's log overwritten after {time.monotonic() - noise:.1f}s of noise")
            events = [e for e in env.events if e.service == "back"]
            kinds = [(e.kind, e.requested) for e in events]
            assert (EventKind.EXITED, False) in kinds, f"the crash is still known: {kinds}"
            crashed = kinds.index((EventKind.EXITED, False))
            assert (EventKind.RESTARTED, False) in kinds[crashed:], kinds
            [healed] = recovery_times(events, "back")
            assert 0.0 < healed < 20.0
            assert all(abs(e.at - e.wall - (time.monotonic() - time.time())) < 1.0 for e in events)
            assert len(_event_threads()) == 1, "one subscription, collecting in the background"
        assert _event_threads() == [], "stop() ends the subscription"
        kept = {(e.service, e.kind, e.wall) for e in env.events}
        assert {(e.service, e.kind, e.wall) for e in events} <= kept, "still readable after stop"
    assert leftovers(docker_client, run_id, env.project) == []


def test_a_failed_start_leaves_no_subscription_behind(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    run_id = new_run_id()
    with Ledger(tmp_path, run_id=run_id) as ledger:
        env = fixture_environment(run_id, tmp_path, ledger, ready_timeout=0.0)
        with pytest.raises(EnvironmentFailure, match="did not become ready within 0s"):
            env.start()
        assert ledger.open_entries == []
    assert _event_threads() == []
    assert leftovers(docker_client, run_id, env.project) == []
