"""Container faults on a real Compose project, with decoys that must never be touched.

Crash (SIGKILL of the main PID) is healed by `restart: unless-stopped` and the experiment measures
how long; `docker stop` and `docker kill` are manual stops the policy leaves alone. Each test prints
the fault's activation time (call → effect observed from outside).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from chaos.environments.compose import ComposeEnvironment, project_name
from chaos.environments.restart_policy import recovery_times
from chaos.errors import UnknownTarget
from chaos.experiment import Experiment, ExperimentSettings
from chaos.ledger import Ledger
from faults.container import (
    compose_down_recipe,
    disconnect,
    network_connect_recipe,
    start_recipe,
    unpause_recipe,
)
from faults.process import kill, pause, restart, stop
from reconcilers.docker_sweep import sweep_labelled
from reconcilers.sweeper import sweep
from tests.fixtures.compose.support import (
    Decoys,
    fixture_environment,
    leftovers,
    new_run_id,
    remove_decoys,
    start_decoys,
    status,
    wait_until,
)

pytestmark = pytest.mark.docker
POLICY_GRACE = 2.5  # seconds to be sure Docker's restart policy is not bringing a container back


@pytest.fixture(scope="module")
def run_id() -> str:
    return new_run_id()


@pytest.fixture(scope="module")
def decoys(docker_client: docker.DockerClient, run_id: str) -> Iterator[tuple[Decoys, dict]]:
    found = start_decoys(docker_client, project_name(run_id))
    try:
        assert wait_until(
            lambda: all(c.status == "running" for c in found.containers(docker_client)), 10
        )
        yield found, found.snapshot(docker_client)
    finally:
        remove_decoys(docker_client, found)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults-state")


@pytest.fixture(scope="module")
def ledger(state: Path, run_id: str) -> Iterator[Ledger]:
    with Ledger(state, run_id=run_id) as ledger:
        yield ledger


@pytest.fixture(scope="module")
def env(decoys: object, ledger: Ledger, state: Path, run_id: str) -> Iterator[ComposeEnvironment]:
    env = fixture_environment(run_id, state, ledger)
    with env:
        yield env


@pytest.fixture
def fresh(env: ComposeEnvironment) -> ComposeEnvironment:
    """The module's environment, back in its declared state before each test."""
    env.reconcile()
    return env


def _state(env: ComposeEnvironment, service: str) -> dict:
    return dict(env.lifecycle.state(service))


def _report(fault: str, seconds: float) -> None:
    print(f"\nactivation {fault}: {seconds * 1000:.0f} ms (call → effect observed)")


def test_a_crash_is_healed_by_the_restart_policy_and_measured(
    fresh: ComposeEnvironment, ledger: Ledger
) -> None:
    before = fresh.lifecycle.container("back").attrs
    settings = ExperimentSettings(rto=20.0, baseline=0.5)
    experiment = Experiment(fresh, ledger, name="crash back", settings=settings)
    experiment.baseline()
    began = time.monotonic()
    with experiment.inject(kill("back")):
        _report("kill (SIGKILL main pid)", time.monotonic() - began)
    ttr = experiment.recover()
    experiment.finish(test_id="crash")
    after = fresh.lifecycle.container("back").attrs
    assert after["RestartCount"] == before["RestartCount"] + 1, "Docker's policy restarted it"
    assert after["State"]["Pid"] != before["State"]["Pid"] and after["State"]["Running"]
    # Customers may be served again before Docker's next healthcheck marks the container healthy
    healed_seen = lambda: bool(recovery_times(fresh.events, "back"))  # noqa: E731
    assert wait_until(healed_seen, 10), fresh.events
    healed = recovery_times(fresh.events, "back")
    assert len(healed) == 1 and 0.0 < healed[0] < 20.0, fresh.events
    print(f"crash healed: container died → healthy in {healed[0]:.2f}s; customers' TTR {ttr:.2f}s")
    assert 0.0 <= ttr <= 20.0
    assert fresh.reconcile() == [], "the system healed itself: nothing for us to repair"


def test_a_stop_is_not_healed_by_the_policy_and_its_revert_starts_it(
    fresh: ComposeEnvironment,
) -> None:
    before = fresh.lifecycle.container("back").attrs["RestartCount"]
    plan = stop("back").plan(fresh)
    assert plan.recipe.action == "docker.start"
    began = time.monotonic()
    plan.apply()
    assert _state(fresh, "back")["Status"] == "exited"
    _report("stop", time.monotonic() - began)
    time.sleep(POLICY_GRACE)
    assert _state(fresh, "back")["Status"] == "exited", "unless-stopped: a stop stays stopped"
    assert fresh.lifecycle.container("back").attrs["RestartCount"] == before
    plan.revert()
    fresh.wait_ready("back", timeout=20)


def test_docker_kill_counts_as_a_manual_stop(fresh: ComposeEnvironment) -> None:
    """Why a crash must be a SIGKILL of the main pid: Docker never restarts after `docker kill`."""
    fresh.lifecycle.container("back").kill()
    time.sleep(POLICY_GRACE)
    assert _state(fresh, "back")["Status"] == "exited"
    (repair,) = fresh.reconcile()
    assert repair.startswith("started service back (it was exited, exit code 137)")


def test_pause_freezes_the_service_until_reverted(fresh: ComposeEnvironment) -> None:
    health = fresh.endpoint("front") + "/health"
    plan = pause("front").plan(fresh)
    assert plan.recipe.action == "docker.unpause"
    began = time.monotonic()
    plan.apply()
    assert _state(fresh, "front")["Paused"]
    _report("pause", time.monotonic() - began)
    assert status(health, timeout=0.3) == 0, "a frozen service answers nothing"
    plan.revert()
    assert status(health) == 200


def test_restart_brings_a_new_process(fresh: ComposeEnvironment) -> None:
    before = _state(fresh, "back")
    plan = restart("back").plan(fresh)
    began = time.monotonic()
    plan.apply()
    _report("restart", time.monotonic() - began)
    after = _state(fresh, "back")
    assert after["StartedAt"] != before["StartedAt"] and after["Pid"] != before["Pid"]
    fresh.wait_ready("back", timeout=20)


def test_disconnect_partitions_the_service_and_reconnect_restores_its_aliases(
    fresh: ComposeEnvironment,
) -> None:
    call = fresh.endpoint("front") + "/call"
    before = fresh.lifecycle.attachments("back")
    assert "back" in before[0].aliases
    plan = disconnect("back").plan(fresh)
    json.dumps(plan.recipe.to_json())  # the ledger can hold it
    began = time.monotonic()
    plan.apply()
    assert wait_until(lambda: status(call) == 502, 10), "front can no longer reach back"
    _report("disconnect", time.monotonic() - began)
    assert fresh.lifecycle.attachments("back") == []
    plan.revert()
    assert fresh.lifecycle.attachments("back") == before, "same networks, same aliases"
    assert wait_until(lambda: status(call) == 200, 10)
    plan.revert()  # idempotent


def test_an_unknown_service_is_refused_before_anything_is_injected(
    fresh: ComposeEnvironment, ledger: Ledger
) -> None:
    for fault in (kill("nope"), stop("nope"), pause("nope"), disconnect("nope")):
        with pytest.raises(UnknownTarget, match=r"unknown service 'nope'.*declares: back, front"):
            fault.plan(fresh)
    experiment = Experiment(fresh, ledger, name="bad", settings=ExperimentSettings(baseline=0.2))
    with pytest.raises(UnknownTarget), experiment.inject(pause("back"), disconnect("nope")):
        pass
    experiment.finish(test_id="bad", error=UnknownTarget("nope"))
    assert [e.kind for e in ledger.open_entries] == ["resource"], "no fault was recorded"
    assert not _state(fresh, "back")["Paused"], "the valid fault was not applied either"


def test_recipes_are_idempotent_and_act_only_on_our_run(
    fresh: ComposeEnvironment, decoys: tuple[Decoys, dict], docker_client: docker.DockerClient
) -> None:
    found, _ = decoys
    back = fresh.lifecycle.container("back").id
    unpause_recipe(container=back, run_id=fresh.run_id)  # not paused: nothing to do
    start_recipe(container="0" * 64, run_id=fresh.run_id)  # gone: success
    attachments = [a.to_json() for a in fresh.lifecycle.attachments("back")]
    network_connect_recipe(container=back, run_id=fresh.run_id, networks=attachments)
    decoy_networks = sorted(
        docker_client.containers.get(found.plain).attrs["NetworkSettings"]["Networks"]
    )
    network_connect_recipe(container=found.plain, run_id=fresh.run_id, networks=attachments)
    after = docker_client.containers.get(found.plain).attrs["NetworkSettings"]["Networks"]
    assert sorted(after) == decoy_networks, "not ours (no run label): left alone"
    compose_down_recipe(project=found.project, run_id=fresh.run_id)
    assert all(c.status == "running" for c in found.containers(docker_client))
    assert fresh.reconcile() == []


def test_blast_radius_decoys_survive_every_fault_clean_and_teardown(
    env: ComposeEnvironment,
    decoys: tuple[Decoys, dict],
    docker_client: docker.DockerClient,
    state: Path,
    ledger: Ledger,
) -> None:
    found, snapshot = decoys
    env.reconcile()
    for fault in (kill("back"), stop("back"), pause("front"), restart("front"), disconnect("back")):
        plan = fault.plan(env)
        plan.apply()
        plan.revert()
    env.reconcile()
    env.stop()
    assert sweep(state).ok
    sweep_labelled()
    assert leftovers(docker_client, env.run_id, env.project) == []
    current = found.snapshot(docker_client)
    assert current == snapshot, "a decoy was touched"
    assert ledger.open_entries == []
