"""The catalog loads into typed objects (malformed catalogs: test_catalog_errors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.catalog import Catalog, Edge, HttpStep, Service, Slo, load_catalog
from chaos.errors import UnknownTarget
from tests.unit.test_yamlsource import expect_error, line_of

FIXTURE = Path(__file__).parent.parent / "fixtures" / "catalog" / "chaos.yaml"

BASE = """\
version: 1
name: shop
services:
  postgres:
    tier: 1
    port: 5432
  payments:
    tier: 1
    depends_on: [postgres]
    rto: 20s
    port: 9000
    health: /health
  orders:
    tier: 2
    depends_on: [payments, postgres]
    port: 9001
  web:
    tier: 3
    depends_on: [orders]
    restore_order: 9
    port: 8000
    health: /health
edges:
  - web -> orders
  - orders->payments
  - from: payments
    to: postgres
    env: DATABASE_URL
    url: "postgresql://{host}:{port}/shop"
journeys:
  checkout:
    description: buy one item
    customers: 3
    interval: 200ms
    steps:
      - GET web /catalogue
      - method: post
        service: web
        path: /checkout/{customer}/{seq}
        json: {item: 1, gift: false}
        expect: 200
    slo:
      success: 0.95
      p95: 500ms
      p99: 1s
  reconcile:
    services: [orders, payments]
    call: examples.shop.journeys:reconcile
failure_modes:
  1: [latency, outage, kill]
  tier2: [outage]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chaos.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur once in BASE"
    return BASE.replace(old, new)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return load_catalog(write(tmp_path, BASE))


def test_services_are_typed_with_defaults(catalog: Catalog) -> None:
    assert catalog.name == "shop"
    assert list(catalog.services) == ["postgres", "payments", "orders", "web"]
    assert catalog.service("payments") == Service(
        name="payments",
        tier=1,
        description="",
        depends_on=("postgres",),
        restore_order=2,
        rto=20.0,
        port=9000,
        health="/health",
    )
    postgres = catalog.service("postgres")
    assert (postgres.rto, postgres.health, postgres.health_path) == (30.0, "tcp", None)
    assert catalog.service("web").health_path == "/health"


def test_restore_order_defaults_to_dependencies_first(catalog: Catalog) -> None:
    orders = {name: s.restore_order for name, s in catalog.services.items()}
    assert orders == {"postgres": 1, "payments": 2, "orders": 3, "web": 9}
    assert catalog.restore_sequence() == ["postgres", "payments", "orders", "web"]


def test_restore_sequence_breaks_ties_by_name(tmp_path: Path) -> None:
    text = edit("    tier: 2\n", "    tier: 2\n    restore_order: 1\n")
    catalog = load_catalog(write(tmp_path, text))
    assert catalog.restore_sequence() == ["orders", "postgres", "payments", "web"]


def test_edges_short_and_long_forms(catalog: Catalog) -> None:
    assert catalog.edges == (
        Edge("web", "orders", "ORDERS_ADDR"),
        Edge("orders", "payments", "PAYMENTS_ADDR"),
        Edge("payments", "postgres", "DATABASE_URL", "postgresql://{host}:{port}/shop"),
    )
    db = catalog.edges[2]
    assert db.name == "payments -> postgres"
    assert db.address("127.0.0.7", 5433) == "postgresql://127.0.0.7:5433/shop"
    assert catalog.edges[0].address("127.0.0.2", 80) == "127.0.0.2:80"


TINY = """\
version: 1
services:
  my-db.v2: {tier: 2, port: 5432}
  app: &defaults
    tier: 1
    rto: 5s
    port: 8000
  worker:
    <<: *defaults
    port: 8001
edges: [app -> my-db.v2]
journeys:
  nightly: {call: "jobs.nightly:run"}
failure_modes: {}
"""


def test_default_env_replaces_dashes_and_dots(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, TINY))
    assert catalog.edge("app -> my-db.v2").env == "MY_DB_V2_ADDR"
    assert catalog.required_modes == {}
    nightly = catalog.journeys["nightly"]
    assert (nightly.services, nightly.tier, nightly.steps) == ((), 1, ())


def test_yaml_merge_keys_share_service_defaults(tmp_path: Path) -> None:
    worker = load_catalog(write(tmp_path, TINY)).service("worker")
    assert (worker.tier, worker.rto, worker.port) == (1, 5.0, 8001)


def test_edge_lookup_accepts_arrow_spellings(catalog: Catalog) -> None:
    for spec in (
        "orders -> payments",
        "orders->payments",
        "orders → payments",
        " orders  ->payments ",
    ):
        assert catalog.edge(spec) is catalog.edges[1]
    assert catalog.target("orders->payments") is catalog.edges[1]
    assert catalog.target("web") is catalog.service("web")


def test_unknown_targets_list_the_valid_names(catalog: Catalog) -> None:
    with pytest.raises(UnknownTarget, match=r"'paymnts' \(did you mean 'payments'\?\)") as info:
        catalog.service("paymnts")
    assert "postgres, payments, orders, web" in str(info.value)
    with pytest.raises(UnknownTarget, match="web -> orders, orders -> payments") as info:
        catalog.edge("payments -> orders")
    assert str(catalog.path) in str(info.value)
    with pytest.raises(UnknownTarget, match="unknown service or edge 'nope'"):
        catalog.target("nope")
    with pytest.raises(UnknownTarget):
        catalog.edges_from("nope")


def test_edges_from_to_and_journeys_touching(catalog: Catalog) -> None:
    assert [e.name for e in catalog.edges_from("orders")] == ["orders -> payments"]
    assert [e.name for e in catalog.edges_to("orders")] == ["web -> orders"]
    assert catalog.edges_from("postgres") == []
    assert [j.name for j in catalog.journeys_touching("payments")] == ["reconcile"]
    assert [j.name for j in catalog.journeys_touching("web")] == ["checkout"]
    assert catalog.journeys_touching("postgres") == []


def test_journeys_http_and_python_forms(catalog: Catalog) -> None:
    checkout = catalog.journeys["checkout"]
    assert checkout.steps == (
        HttpStep("GET", "web", "/catalogue"),
        HttpStep("POST", "web", "/checkout/{customer}/{seq}", {"item": 1, "gift": False}, (200,)),
    )
    assert (checkout.services, checkout.tier, checkout.call) == (("web",), 3, None)
    assert (checkout.customers, checkout.interval, checkout.timeout) == (3, 0.2, 2.0)
    assert checkout.slo == Slo(success=0.95, p95=0.5, p99=1.0)
    assert checkout.steps[1].render_path(customer=4, seq=17) == "/checkout/4/17"
    assert checkout.steps[0].accepts(204) and not checkout.steps[0].accepts(301)
    assert checkout.steps[1].accepts(200) and not checkout.steps[1].accepts(201)
    reconcile = catalog.journeys["reconcile"]
    assert (reconcile.call, reconcile.steps, reconcile.tier) == (
        "examples.shop.journeys:reconcile",
        (),
        1,  # the best tier among orders (2) and payments (1)
    )
    assert (reconcile.customers, reconcile.interval, reconcile.slo) == (2, 0.1, Slo())


def test_required_failure_modes(catalog: Catalog) -> None:
    assert catalog.required_modes_for(1) == ("latency", "outage", "kill")
    assert catalog.required_modes_for(2) == ("outage",)
    assert catalog.required_modes_for(4) == ()
    load_catalog(catalog.path, fault_kinds={"latency", "outage", "kill", "pause"})


def test_unknown_fault_kind_lists_the_registered_ones(catalog: Catalog) -> None:
    expect_error(
        lambda: load_catalog(catalog.path, fault_kinds={"latency", "outages", "kill"}),
        file=catalog.path,
        line=line_of(BASE, "  1: [latency"),
        field="failure_modes.1[1]",
        says="unknown fault kind 'outage' (did you mean 'outages'?); valid kinds: kill, latency",
    )


def test_name_defaults_to_the_directory_and_environments_resolve(tmp_path: Path) -> None:
    folder = tmp_path / "my-shop"
    (folder / "envs").mkdir(parents=True)
    (folder / "envs" / "local.yaml").write_text("version: 1\n")
    text = edit("name: shop\n", "environments:\n  local: envs/local.yaml\n")
    catalog = load_catalog(write(folder, text))
    assert catalog.name == "my-shop"
    assert catalog.environments == {"local": (folder / "envs" / "local.yaml").resolve()}
    assert catalog.path == (folder / "chaos.yaml").resolve()


def test_missing_environment_file(tmp_path: Path) -> None:
    text = edit("name: shop\n", "environments:\n  compose: compose.yaml\n")
    path = write(tmp_path, text)
    expect_error(
        lambda: load_catalog(path),
        file=path,
        line=line_of(text, "compose: compose.yaml"),
        field="environments.compose",
        says="does not exist",
    )


def test_the_shipped_fixture_loads() -> None:
    catalog = load_catalog(FIXTURE)
    assert list(catalog.services) == ["store", "web"]
    assert catalog.edges[0].name == "web -> store"
    assert catalog.restore_sequence() == ["store", "web"]
    assert set(catalog.journeys) == {"browse", "buy"}
    assert catalog.environments["local"].name == "local.yaml"


# (old text, new text, line marker in the new text, field, fragment of the reason)
