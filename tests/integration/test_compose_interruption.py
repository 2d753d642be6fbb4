"""A SIGKILLed run leaves a paused and a disconnected container; `chaos clean` restores and removes them.

Also: the label sweep removes objects of runs whose owner is dead, and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from chaos.environments.compose import project_name
from chaos.ledger import ledger_files, read_ledger
from chaos.procfs import process_start_ticks
from faults.container import OWNER_LABEL, RUN_LABEL, SERVICE_LABEL
from reconcilers.docker_sweep import sweep_labelled
from tests.fixtures.compose.support import (
    CATALOG,
    SERVICE_IMAGE,
    Decoys,
    images,
    labelled,
    leftovers,
    new_run_id,
    remove_decoys,
    start_decoys,
    wait_until,
)

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]

INNER = """
import pytest
from faults.container import disconnect
from faults.process import pause

@pytest.mark.chaos(baseline="300ms")
def test_held_faults(experiment):
    with experiment.inject(pause("front"), disconnect("back")):
        experiment.observe("120s")
"""


def _run_id(state: Path) -> str | None:
    files = list(ledger_files(state))
    return read_ledger(files[0]).run_id if files else None


def _faults_held(docker_client: docker.DockerClient, project: str) -> bool:
    """front paused and back on no network: both faults are in effect."""
    by_service = {
        c.labels[SERVICE_LABEL]: c
        for c in docker_client.containers.list(
            filters={"label": f"com.docker.compose.project={project}"}
        )
    }
    if not {"front", "back"} <= set(by_service):
        return False
    back_networks = by_service["back"].attrs["NetworkSettings"]["Networks"] or {}
    return by_service["front"].status == "paused" and not back_networks


def _docker_cli(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=30).stdout


def _events(docker_client: docker.DockerClient, since: float, **filters: str) -> list[dict]:
    return list(docker_client.events(since=since, until=time.time(), decode=True, filters=filters))


@pytest.fixture
def decoys(docker_client: docker.DockerClient) -> Iterator[Decoys]:
    images()
    found = start_decoys(docker_client, "chaos-" + new_run_id().lower())
    try:
        yield found
    finally:
        remove_decoys(docker_client, found)


def test_chaos_clean_restores_and_removes_what_a_sigkilled_run_left(
    tmp_path: Path, docker_client: docker.DockerClient, decoys: Decoys
) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    state = tmp_path / "state"
    snapshot = decoys.snapshot(docker_client)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py",
         f"--chaos-catalog={CATALOG}", "--chaos-env=compose", f"--chaos-state-dir={state}",
         f"--chaos-results={tmp_path / 'results'}", f"--rootdir={tmp_path}"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert wait_until(lambda: _run_id(state) is not None, 30), "the run never opened a ledger"
        project = project_name(_run_id(state) or "")
        ended = lambda: _faults_held(docker_client, project) or proc.poll() is not None  # noqa: E731
        if not wait_until(ended, 90, poll=0.2) or not _faults_held(docker_client, project):
            proc.kill()
            pytest.fail("faults never held:\n" + proc.communicate(timeout=30)[0].decode()[-3000:])
    finally:
        proc.kill()
        proc.wait(timeout=30)
    run_id = _run_id(state) or ""
    killed_at = time.time()
    assert leftovers(docker_client, run_id, project), (
        "SIGKILL leaves the project behind (the point)"
    )
    front, back = (
        docker_client.containers.list(
            filters={"label": [f"{RUN_LABEL}={run_id}", f"{SERVICE_LABEL}={s}"]}
        )[0]
        for s in ("front", "back")
    )
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "clean", f"--state-dir={state}"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("reverted: ")]
    assert len(lines) == 3, done.stdout
    assert "disconnect back" in lines[0] and "pause front" in lines[1]
    assert f"compose project {project}" in lines[2]
    unpaused = _events(docker_client, killed_at, container=front.id, event="unpause")
    assert unpaused, "clean unpaused front before removing it"
    connects = _events(docker_client, killed_at, type="network", event="connect")
    assert any(e["Actor"]["Attributes"].get("container") == back.id for e in connects)
    assert leftovers(docker_client, run_id, project) == []
    assert run_id not in _docker_cli("ps", "-a", "--format", "{{.Names}} {{.Labels}}")
    assert project not in _docker_cli("ps", "-a", "--format", "{{.Names}}")
    assert project not in _docker_cli("network", "ls", "--format", "{{.Name}}")
    assert not list(ledger_files(state)), "every entry reverted: the ledger is gone"
    assert decoys.snapshot(docker_client) == snapshot, "clean touched a decoy"


def test_the_label_sweep_removes_only_objects_of_dead_owners(
    docker_client: docker.DockerClient,
) -> None:
    images()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner = f"{child.pid}:{process_start_ticks(child.pid)}"
    child.wait(timeout=10)
    me = f"{os.getpid()}:{process_start_ticks(os.getpid())}"
    dead, alive, listed = new_run_id(), new_run_id(), new_run_id()
    made = []
    for run, owner in ((dead, dead_owner), (alive, me), (listed, dead_owner)):
        labels = {RUN_LABEL: run, OWNER_LABEL: owner}
        made.append(docker_client.networks.create(f"chaos-sweep-{run.lower()}", labels=labels))
        made.append(docker_client.containers.create(SERVICE_IMAGE, labels=labels, command=["true"]))
    try:
        removed = sweep_labelled(live_run_ids=[listed])
        assert sorted(removed) == sorted(
            [
                f"run {dead}: network chaos-sweep-{dead.lower()}",
                f"run {dead}: container {made[1].name}",
            ]
        )
        assert labelled(docker_client, f"{RUN_LABEL}={dead}") == []
        assert len(labelled(docker_client, f"{RUN_LABEL}={alive}")) == 2, "owner alive: left alone"
        assert len(labelled(docker_client, f"{RUN_LABEL}={listed}")) == 2, "live run: left alone"
    finally:
        for run in (alive, listed):
            for container in docker_client.containers.list(
                all=True, filters={"label": f"{RUN_LABEL}={run}"}
            ):
                container.remove(force=True)
            for network in docker_client.networks.list(filters={"label": f"{RUN_LABEL}={run}"}):
                network.remove()
