"""The local environment with real processes: proxied edges, process faults, reconcile, teardown."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from chaos.catalog import Catalog, load_catalog
from chaos.environments.local import LocalEnvironment
from chaos.environments.restart_policy import EventKind, recovery_times
from chaos.environments.supervisor import ServiceState
from chaos.errors import CatalogError, EnvironmentFailure, FaultError, UnknownTarget
from chaos.ledger import Ledger
from chaos.procfs import proc_stat
from faults.base import NOTHING_TO_REVERT
from faults.process import KINDS, Kill, Pause, Stop

FIXTURE = Path(__file__).parent.parent / "fixtures" / "local_env"
HOSTS = {"front": "127.0.0.10", "back": "127.0.0.11"}  # catalog order: front, back


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def fixture_copy(tmp_path: Path, *, environments: bool = True) -> Catalog:
    """The fixture catalog with free ports (tests may run in parallel) and the fixture's cwd."""
    catalog = yaml.safe_load((FIXTURE / "chaos.yaml").read_text())
    local = yaml.safe_load((FIXTURE / "local.yaml").read_text())
    for name, entry in catalog["services"].items():
        entry["port"] = free_port(HOSTS[name])
        local["services"][name]["cwd"] = str(FIXTURE)
    if not environments:
        del catalog["environments"]
    (tmp_path / "chaos.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(local, sort_keys=False))
    return load_catalog(tmp_path / "chaos.yaml")


def get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def gone(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is None or stat.state == "Z"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path, run_id="env-test") as led:
        yield led


@pytest.fixture
def env(tmp_path: Path, ledger: Ledger) -> Iterator[LocalEnvironment]:
    catalog = fixture_copy(tmp_path)
    environment = LocalEnvironment.from_catalog(
        catalog, run_id="env-test", state_dir=tmp_path, tracker=ledger
    )
    with environment:
        yield environment


def call(env: LocalEnvironment, timeout: float = 3.0) -> tuple[int, str]:
    return get(env.endpoint("front") + "/call", timeout)


def test_request_through_front_reaches_back_via_the_edge_proxy(env: LocalEnvironment) -> None:
    assert env.address("front") == (HOSTS["front"], env.spec.services["front"].port)
    assert call(env) == (200, "upstream: ok")
    edge = env.catalog.edge("front -> back")
    proxy = env.proxy().proxies()[env.proxy_name(edge)]
    back_host, back_port = env.address("back")
    assert proxy.name == "front--back" and proxy.upstream == f"{back_host}:{back_port}"
    environ = Path(f"/proc/{env.lifecycle.pid('front')}/environ").read_bytes().split(b"\0")
    assert f"UPSTREAM_URL=http://127.0.0.1:{proxy.port}".encode() in environ
    env.proxy().update_proxy(proxy.name, enabled=False)  # the edge really goes through it
    status, body = call(env)
    assert status == 502 and f":{proxy.port}" in body


def test_reconcile_cleans_the_proxies_and_says_what_it_did(env: LocalEnvironment) -> None:
    assert env.reconcile() == []
    client = env.proxy()
    client.add_toxic("front--back", "latency", attributes={"latency": 10}, name="slow")
    client.update_proxy("front--back", enabled=False)
    assert env.reconcile() == [
        "removed toxic slow (latency) from proxy front--back",
        "re-enabled proxy front--back",
    ]
    assert client.get_proxy("front--back").toxics == () and call(env)[0] == 200


def test_kill_fault_is_healed_by_the_restart_policy(env: LocalEnvironment, ledger: Ledger) -> None:
    old = env.lifecycle.pid("back")
    injection = Kill("back").plan(env)
    assert injection.recipe == NOTHING_TO_REVERT and injection.description == "kill back"
    killed_at = time.monotonic()
    injection.apply()
    injection.revert()  # nothing: the system heals itself
    env.lifecycle.wait_for("back", EventKind.READY, since=killed_at, timeout=5)
    [heal] = recovery_times(env.events, "back")
    assert 0.1 <= heal < 3.0
    assert gone(old) and env.lifecycle.pid("back") != old
    assert call(env) == (200, "upstream: ok")
    assert len(ledger.open_entries) == 2  # one live entry per service, the dead one released


def test_stop_fault_stays_down_until_reverted_or_reconciled(env: LocalEnvironment) -> None:
    injection = Stop("back").plan(env)
    injection.apply()
    time.sleep(0.3)  # longer than the first backoff step: the policy must not restart it
    assert env.lifecycle.state("back") is ServiceState.STOPPED and not env.healthy("back")
    assert call(env)[0] == 502
    assert env.reconcile() == ["started service back (it was stopped)"]
    assert env.healthy("back") and env.reconcile() == []
    injection = Stop("back").plan(env)
    injection.apply()
    injection.revert()
    env.wait_healthy("back")
    assert call(env) == (200, "upstream: ok")


def test_pause_makes_requests_time_out_until_resumed(env: LocalEnvironment) -> None:
    injection = Pause("back").plan(env)
    assert injection.recipe.action == "process.signal"
    injection.apply()
    with pytest.raises(TimeoutError):
        get(env.endpoint("back") + "/echo", timeout=0.5)
    began = time.monotonic()
    assert call(env)[0] == 502  # front's upstream timeout (1 s) expires
    assert 0.9 <= time.monotonic() - began < 3.0
    injection.revert()
    assert call(env) == (200, "upstream: ok")
    env.lifecycle.pause("back")
    assert env.reconcile() == ["resumed paused service back"]


def test_process_fault_plan_validates_before_anything_happens(env: LocalEnvironment) -> None:
    def actions() -> list[tuple[str, EventKind]]:
        return [(e.service, e.kind) for e in env.events if e.kind is not EventKind.READY]

    before = actions()
    for kind in KINDS:
        with pytest.raises(UnknownTarget, match="'nope'"):
            kind("nope").plan(env)
    assert actions() == before
    env.lifecycle.stop("back")
    with pytest.raises(FaultError, match="cannot pause service 'back': it is not running"):
        Pause("back").plan(env)
    assert actions()[len(before) :] == [("back", EventKind.EXITED), ("back", EventKind.STOPPED)]
    assert sorted(k.kind for k in KINDS) == ["kill", "pause", "restart", "stop"]


def test_stop_leaves_nothing_running(tmp_path: Path, ledger: Ledger) -> None:
    environment = LocalEnvironment.from_catalog(
        fixture_copy(tmp_path), run_id="env-test", state_dir=tmp_path, tracker=ledger
    )
    environment.start()
    pids = [environment.lifecycle.pid(name) for name in ("front", "back")]
    api = environment.proxy()
    assert all(pid is not None and not gone(pid) for pid in pids)
    environment.stop()
    environment.stop()  # idempotent
    assert all(gone(pid) for pid in pids)
    assert ledger.open_entries == []
    with pytest.raises(Exception, match="cannot reach the proxy admin API"):
        api.version()
    for name in ("front", "back"):
        assert not environment.healthy(name)
    kinds = [e.kind for e in environment.events if e.service == "front"]
    assert kinds[-1] is EventKind.STOPPED
    with pytest.raises(EnvironmentFailure, match="already stopped"):
        environment.start()


def test_busy_address_is_a_clear_error_before_anything_starts(tmp_path: Path) -> None:
    catalog = fixture_copy(tmp_path)
    environment = LocalEnvironment.from_catalog(catalog, run_id="busy", state_dir=tmp_path)
    host, port = environment.address("back")
    with socket.socket() as squatter:
        squatter.bind((host, port))
        squatter.listen()
        with pytest.raises(EnvironmentFailure) as info:
            environment.start()
    message = str(info.value)
    assert f"service 'back' cannot listen on {host}:{port}" in message
    assert "already in use" in message and "local.yaml" in message
    assert environment.lifecycle.services == [] and not (tmp_path / "logs").exists()


def test_a_service_that_never_gets_healthy_shows_its_log(tmp_path: Path) -> None:
    catalog = fixture_copy(tmp_path)
    local = yaml.safe_load((tmp_path / "local.yaml").read_text())
    local["services"]["back"]["command"] = ["python3", "-c", "print('boom: no config'); exit(4)"]
    local["services"]["back"]["restart"] = "no"
    (tmp_path / "local.yaml").write_text(yaml.safe_dump(local, sort_keys=False))
    environment = LocalEnvironment.from_catalog(catalog, run_id="sick", state_dir=tmp_path)
    began = time.monotonic()
    with pytest.raises(EnvironmentFailure, match=r"(?s)'back' did not become healthy.*boom"):
        environment.start()
    assert time.monotonic() - began < 5  # gave up when the process exited, not at the timeout
    assert environment.lifecycle.pid("back") is None


def test_from_catalog_needs_a_local_environment(tmp_path: Path) -> None:
    catalog = fixture_copy(tmp_path, environments=False)
    with pytest.raises(CatalogError) as info:
        LocalEnvironment.from_catalog(catalog, run_id="x", state_dir=tmp_path)
    assert info.value.field == "environments.local"


def test_describe_names_the_proxy_and_addresses(env: LocalEnvironment) -> None:
    facts = env.describe()
    assert facts["kind"] == "local" and facts["proxy"].startswith("built-in")
    assert f"back={HOSTS['back']}:" in facts["services"]
