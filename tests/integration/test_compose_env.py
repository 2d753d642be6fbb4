"""The compose environment: override rules (pure), then a real project on the local Docker engine.

Up/down, ports on 127.0.0.1 only, labels on everything, edges through the sidecar, the ledger entry
written before `up`, refusal of bad input and of an ambiguous project, and reconciliation.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from chaos.catalog import load_catalog
from chaos.environments.compose import ComposeEnvironment, project_name
from chaos.environments.compose_config import (
    SIDECAR,
    Wiring,
    build_override,
    check_compose,
    port_host_ip,
)
from chaos.errors import CatalogError, ConfigError, EnvironmentFailure
from chaos.ledger import Ledger, read_ledger
from faults.container import OWNER_LABEL, PROJECT_LABEL, RUN_LABEL
from tests.fixtures.compose.support import (
    CATALOG,
    COMPOSE_FILE,
    fixture_environment,
    images,
    labelled,
    leftovers,
    new_run_id,
    status,
    wait_until,
)

WIRING = Wiring("R1", "42:7", "proxy:tag", {"back": 40001, "front": 40002}, 40003)


def _config(**front: Any) -> dict[str, Any]:
    return {
        "services": {
            "back": {"image": "x", "networks": {"inner": None}},
            "front": {"image": "x", "environment": {"UPSTREAM_URL": "http://back:8000"}, **front},
            "extra": {"image": "x", "volumes": ["data:/data"]},
        },
        "networks": {"inner": {"driver": "bridge", "driver_opts": {"mtu": "1400"}},
                     "outside": {"external": True}},
        "volumes": {"data": {}, "shared": {"external": True}},
    }  # fmt: skip


# --- the override, without Docker ------------------------------------------------------------


def test_the_override_labels_everything_and_points_the_consumer_at_the_sidecar() -> None:
    catalog = load_catalog(CATALOG)
    override = build_override(catalog, _config(), WIRING)
    labels = {RUN_LABEL: "R1", OWNER_LABEL: "42:7"}
    services = override["services"]
    assert set(services) == {"back", "front", "extra", SIDECAR}
    assert all(service["labels"] == labels for service in services.values())
    assert services["front"]["environment"] == {"UPSTREAM_URL": "http://chaos-proxy:18000"}
    assert services["back"]["ports"] == ["127.0.0.1:40001:8000"]
    assert services["front"]["ports"] == ["127.0.0.1:40002:8000"]
    assert "ports" not in services["extra"], "only catalog services are published"
    sidecar = services[SIDECAR]
    assert sidecar["image"] == "proxy:tag" and sidecar["ports"] == ["127.0.0.1:40003:8474"]
    assert sidecar["networks"] == ["default", "inner"], "it reaches consumer and provider"
    networks = override["networks"]
    assert set(networks) == {"default", "inner"}, "external networks are not ours to label"
    assert networks["inner"] == {
        "driver": "bridge",
        "driver_opts": {"mtu": "1400"},
        "labels": labels,
    }
    assert override["volumes"] == {"data": {"labels": labels}}
    assert "version" not in override


@pytest.mark.parametrize("entry", ["8000", "9000:8000", "0.0.0.0:9000:8000/tcp", {"target": 8000}])
def test_a_port_published_on_every_interface_is_refused(entry: Any) -> None:
    with pytest.raises(ConfigError, match=r"publishes port .* on every interface.*127\.0\.0\.1"):
        check_compose(load_catalog(CATALOG), _config(ports=[entry]), COMPOSE_FILE)


@pytest.mark.parametrize(
    ("entry", "host"),
    [("127.0.0.1::8000", "127.0.0.1"), ("[::1]:9000:8000", "::1"), ("8000", None),
     ({"target": 80, "host_ip": "127.0.0.1"}, "127.0.0.1")],
)  # fmt: skip
def test_loopback_ports_are_accepted(entry: Any, host: str | None) -> None:
    assert port_host_ip(entry) == host
    if host:
        check_compose(load_catalog(CATALOG), _config(ports=[entry]), COMPOSE_FILE)


def test_an_edge_whose_consumer_lacks_the_variable_is_refused() -> None:
    config = _config(environment={"OTHER": "1"})
    with pytest.raises(
        CatalogError, match=r"'front' in .*compose.yaml sets no environment variable UPSTREAM_URL"
    ):
        check_compose(load_catalog(CATALOG), config, COMPOSE_FILE)


def test_a_catalog_service_missing_from_the_compose_file_is_refused() -> None:
    config = _config()
    del config["services"]["back"]
    with pytest.raises(CatalogError, match=r"catalog service 'back' is not a service of"):
        check_compose(load_catalog(CATALOG), config, COMPOSE_FILE)


def test_project_names_are_per_run_and_valid_for_compose() -> None:
    assert project_name("20261123T101010-ABC123") == "chaos-20261123t101010-abc123"
    assert project_name("a b/c") == "chaos-a-b-c"


# --- a real project --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeEnvironment]:
    state = tmp_path_factory.mktemp("compose-state")
    with Ledger(state) as ledger:
        env = fixture_environment(new_run_id(), state, ledger)
        with env:
            yield env


@pytest.mark.docker
def test_up_and_down_leave_nothing_and_release_the_ledger_entry(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    run_id = new_run_id()
    with Ledger(tmp_path, run_id=run_id) as ledger:
        env = fixture_environment(run_id, tmp_path, ledger)
        env.start()
        entries = read_ledger(ledger.path).open_entries
        assert [e.recipe.action for e in entries] == ["compose.down"]
        assert entries[0].recipe.args == {"project": env.project, "run_id": run_id}
        created = min(c.attrs["Created"] for c in docker_client.containers.list(
            all=True, filters={"label": f"{RUN_LABEL}={run_id}"}))  # fmt: skip
        recorded = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(entries[0].opened_at))
        assert recorded <= created[:19], "the ledger entry is written before `up`"
        assert env.override_path.is_file()
        print(f"\nup (images present): {env.up_seconds:.2f}s")
        assert env.up_seconds is not None and env.up_seconds <= 20.0
        began = time.monotonic()
        env.stop()
        print(f"down: {time.monotonic() - began:.2f}s")
        assert leftovers(docker_client, run_id, env.project) == []
        assert not env.override_path.exists()
        assert ledger.open_entries == []
        env.stop()  # idempotent


@pytest.mark.docker
def test_everything_is_labelled_and_published_on_loopback_only(
    started: ComposeEnvironment, docker_client: docker.DockerClient
) -> None:
    ours = docker_client.containers.list(filters={"label": f"{PROJECT_LABEL}={started.project}"})
    assert sorted(c.labels["com.docker.compose.service"] for c in ours) == [
        "back",
        SIDECAR,
        "front",
    ]
    for container in ours:
        assert container.labels[RUN_LABEL] == started.run_id
        for bindings in container.attrs["NetworkSettings"]["Ports"].values():
            assert {b["HostIp"] for b in bindings or ()} <= {"127.0.0.1"}, container.name
    networks = docker_client.networks.list(filters={"label": f"{PROJECT_LABEL}={started.project}"})
    assert networks and all(n.attrs["Labels"][RUN_LABEL] == started.run_id for n in networks)
    for service in ("back", "front"):
        assert started.endpoint(service).startswith("http://127.0.0.1:")
        assert started.healthy(service)
    facts = started.describe()
    assert facts["kind"] == "compose" and facts["project"] == started.project


@pytest.mark.docker
def test_the_edge_runs_through_the_sidecar(started: ComposeEnvironment) -> None:
    call = started.endpoint("front") + "/call"
    edge = started.catalog.edge("front -> back")
    proxy = started.proxy()
    assert status(call) == 200
    proxy.update_proxy(started.proxy_name(edge), enabled=False)
    try:
        assert status(call) == 502, "with the proxy down, front cannot reach back"
    finally:
        proxy.update_proxy(started.proxy_name(edge), enabled=True)
    assert wait_until(lambda: status(call) == 200, 5)


@pytest.mark.docker
def test_reconcile_repairs_the_declared_state_and_lists_each_repair(
    started: ComposeEnvironment,
) -> None:
    assert started.reconcile() == []
    lifecycle, proxy = started.lifecycle, started.proxy()
    name = started.proxy_name(started.catalog.edge("front -> back"))
    proxy.add_toxic(name, "latency", name="slow", attributes={"latency": 300})
    proxy.update_proxy(name, enabled=False)
    lifecycle.pause("back")
    lifecycle.disconnect("front", lifecycle.attachments("front"))
    repairs = started.reconcile()
    assert repairs == [
        f"removed toxic slow (latency) from proxy {name}",
        f"re-enabled proxy {name}",
        "resumed paused service back",
        f"reconnected service front to network {started.project}_default",
    ]
    assert status(started.endpoint("front") + "/call") == 200
    assert started.reconcile() == [], "nothing left to repair"


@pytest.mark.docker
def test_a_stopped_service_without_restart_policy_is_started_by_reconcile(
    started: ComposeEnvironment,
) -> None:
    started.lifecycle.stop("front")
    assert not started.lifecycle.is_running("front")
    (repair,) = started.reconcile()
    assert repair.startswith("started service front (it was exited")
    assert started.healthy("front")


@pytest.mark.docker
def test_a_removed_sidecar_is_recreated_with_its_proxies(started: ComposeEnvironment) -> None:
    started.lifecycle.container(SIDECAR).remove(force=True)
    assert status(started.endpoint("front") + "/call") == 502
    repairs = started.reconcile()
    assert repairs == [
        f"recreated the missing container of service {SIDECAR}",
        "recreated missing proxy front--back on 0.0.0.0:18000",
    ]
    assert wait_until(lambda: status(started.endpoint("front") + "/call") == 200, 10)
    assert started.reconcile() == []


# --- bad input: clear errors, nothing created ------------------------------------------------


def _variant(tmp_path: Path, edit: Any) -> Path:
    """A copy of the fixture project whose compose file `edit` changes; returns the catalog."""
    shutil.copy(CATALOG, tmp_path / "chaos.yaml")
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    edit(compose)
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(compose))
    return tmp_path / "chaos.yaml"


@pytest.mark.docker
def test_bad_input_is_refused_before_anything_starts(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    run_id = new_run_id()
    catalog = load_catalog(CATALOG)
    with pytest.raises(ConfigError, match=r"compose file .*nowhere.yaml does not exist"):
        ComposeEnvironment(catalog, tmp_path / "nowhere.yaml", run_id=run_id, state_dir=tmp_path)
    (tmp_path / "missing").mkdir()
    shutil.copy(CATALOG, tmp_path / "missing" / "chaos.yaml")
    with pytest.raises(CatalogError, match=r"environment file .*compose.yaml does not exist"):
        load_catalog(tmp_path / "missing" / "chaos.yaml")

    def drop_variable(compose: dict[str, Any]) -> None:
        del compose["services"]["front"]["environment"]["UPSTREAM_URL"]

    def publish_everywhere(compose: dict[str, Any]) -> None:
        compose["services"]["back"]["ports"] = ["8000"]

    for edit, error in [(drop_variable, CatalogError), (publish_everywhere, ConfigError)]:
        where = tmp_path / edit.__name__
        where.mkdir()
        with pytest.raises(error):
            ComposeEnvironment.from_catalog(
                load_catalog(_variant(where, edit)), run_id=run_id, state_dir=tmp_path
            )
    assert labelled(docker_client, f"{RUN_LABEL}={run_id}") == []


@pytest.mark.docker
def test_an_existing_project_of_the_same_name_is_refused(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    images()
    run_id = new_run_id()
    squatter = docker_client.networks.create(
        f"{project_name(run_id)}_default", labels={PROJECT_LABEL: project_name(run_id)}
    )
    try:
        with Ledger(tmp_path, run_id=run_id) as ledger:
            env = fixture_environment(run_id, tmp_path, ledger)
            with pytest.raises(EnvironmentFailure, match=r"already exists .*refusing to share it"):
                env.start()
            assert ledger.open_entries == []
        squatter.reload()  # still there: not ours to remove
        assert labelled(docker_client, f"{RUN_LABEL}={run_id}") == []
    finally:
        squatter.remove()
