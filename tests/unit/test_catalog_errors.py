"""Every malformed catalog fails before anything runs, naming its file, line and field."""

from __future__ import annotations

import string
from pathlib import Path

import hypothesis.strategies as st
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from chaos.catalog import load_catalog
from chaos.errors import CatalogError
from tests.unit.test_catalog import BASE, edit, write
from tests.unit.test_yamlsource import expect_error, line_of

CASES = {
    "bad yaml": ("    port: 9001", "    port: [9001", "  web:", None, "(from line 16)"),
    "unsupported version": ("version: 1", "version: 2", "version:", "version", "version 1"),
    "missing version": ("version: 1\n", "", "name: shop", "version", "'version' is missing"),
    "unknown top key": (
        "failure_modes:",
        "failure_mode:",
        "failure_mode:",
        "failure_mode",
        "unknown key 'failure_mode' (did you mean 'failure_modes'?)",
    ),
    "unknown service key": (
        "    rto: 20s",
        "    rt0: 20s",
        "rt0:",
        "services.payments.rt0",
        "(did you mean 'rto'?); valid keys here: tier, description",
    ),
    "wrong type": (
        "    port: 9001",
        "    port: nine",
        "port: nine",
        "services.orders.port",
        "expected a whole number, got 'nine' (a string)",
    ),
    "bad duration": (
        "rto: 20s",
        "rto: 5 parsecs",
        "rto:",
        "services.payments.rto",
        "'5 parsecs'",
    ),
    "tier 7": (
        "    tier: 3",
        "    tier: 7",
        "tier: 7",
        "services.web.tier",
        "between 1 and 4, got 7",
    ),
    "port out of range": ("port: 8000", "port: 70000", "port: 70000", "services.web.port", "65535"),
    "restore_order 0": (
        "restore_order: 9",
        "restore_order: 0",
        "restore_order",
        "services.web.restore_order",
        "at least 1",
    ),
    "bad health": (
        "    port: 9000\n    health: /health",
        "    port: 9000\n    health: healthz",
        "healthz",
        "services.payments.health",
        "neither 'tcp' nor an HTTP path",
    ),
    "bad service name": ("  orders:", "  or ders:", "or ders:", "services.or ders", "valid name"),
    "missing required key": (
        "    port: 5432\n",
        "",
        "  postgres:",
        "services.postgres.port",
        "required key 'port' is missing",
    ),
    "missing value": (
        "    port: 5432",
        "    port:",
        "    port:\n",
        "services.postgres.port",
        "'port' needs a value",
    ),
    "duplicate key": (
        "    port: 9001\n",
        "    port: 9001\n    port: 9002\n",
        "port: 9002",
        "services.orders.port",
        "duplicate key 'port' (first on line 16)",
    ),
    "unknown depends_on": (
        "[payments, postgres]",
        "[payments, postgress]",
        "[payments, postgress]",
        "services.orders.depends_on[1]",
        "unknown service 'postgress' (did you mean 'postgres'?); known: postgres, payments",
    ),
    "depends_on twice": (
        "[payments, postgres]",
        "[payments, payments]",
        "[payments, payments]",
        "services.orders.depends_on[1]",
        "listed twice",
    ),
    "cycle": (
        "  postgres:\n",
        "  postgres:\n    depends_on: [web]\n",
        "depends_on: [postgres]",
        "services.payments.depends_on[0]",
        "dependency cycle postgres -> web -> orders -> payments -> postgres",
    ),
    "self dependency": (
        "[orders]",
        "[web]",
        "depends_on: [web]",
        "services.web.depends_on[0]",
        "dependency cycle web -> web",
    ),
    "unknown service in short edge": (
        "  - web -> orders",
        "  - web -> ordrs",
        "web -> ordrs",
        "edges[0]",
        "unknown service 'ordrs' (did you mean 'orders'?)",
    ),
    "unknown service in long edge": (
        "    to: postgres",
        "    to: postgre",
        "to: postgre",
        "edges[2].to",
        "unknown service 'postgre'",
    ),
    "missing edge from": ("    to: postgres\n", "", "  - from: payments", "edges[2].to", "'to'"),
    "edge not an edge": ("  - web -> orders", "  - web", "  - web", "edges[0]", "such as"),
    "edge to itself": (
        "  - web -> orders",
        "  - web -> web",
        "web -> web",
        "edges[0]",
        "to itself",
    ),
    "duplicate edge": (
        "  - web -> orders\n",
        "  - web -> orders\n  - web->orders\n",
        "web->orders",
        "edges[1]",
        "duplicate edge 'web -> orders'",
    ),
    "env clash": (
        "    env: DATABASE_URL\n",
        "    env: DATABASE_URL\n  - to: orders\n    from: payments\n    env: DATABASE_URL\n",
        "  - to: orders",
        "edges[3]",
        "already sets DATABASE_URL in payments",
    ),
    "bad env name": (
        "env: DATABASE_URL",
        "env: DATABASE-URL",
        "DATABASE-URL",
        "edges[2].env",
        "not an environment variable name",
    ),
    "bad url placeholder": (
        "{host}:{port}/shop",
        "{host}:{prt}/shop",
        "{prt}",
        "edges[2].url",
        "placeholder {prt}",
    ),
    "unknown edge key": ("    to: postgres", "    too: postgres", "too:", "edges[2].too", "'to'"),
    "unknown step service": (
        "        service: web",
        "        service: wbe",
        "service: wbe",
        "journeys.checkout.steps[1].service",
        "unknown service 'wbe' (did you mean 'web'?)",
    ),
    "unknown short step service": (
        "      - GET web /catalogue",
        "      - GET webb /catalogue",
        "webb",
        "journeys.checkout.steps[0]",
        "unknown service 'webb'",
    ),
    "short step shape": (
        "      - GET web /catalogue",
        "      - GET /catalogue",
        "GET /catalogue",
        "journeys.checkout.steps[0]",
        "METHOD SERVICE PATH",
    ),
    "bad method": (
        "      - GET web /catalogue",
        "      - FETCH web /catalogue",
        "FETCH",
        "journeys.checkout.steps[0]",
        "unknown HTTP method 'FETCH'",
    ),
    "bad method long": (
        "method: post",
        "method: pots",
        "pots",
        "journeys.checkout.steps[1].method",
        "(did you mean 'post'?)",
    ),
    "path without slash": (
        "path: /checkout/{customer}/{seq}",
        "path: checkout",
        "path: checkout",
        "journeys.checkout.steps[1].path",
        "must start with '/'",
    ),
    "bad path placeholder": (
        "/checkout/{customer}/{seq}",
        "/checkout/{customer}/{id}",
        "{id}",
        "journeys.checkout.steps[1].path",
        "placeholder {id}",
    ),
    "bad expect": (
        "expect: 200",
        "expect: [200, 700]",
        "700",
        "journeys.checkout.steps[1].expect[1]",
        "599",
    ),
    "json not json": (
        "json: {item: 1, gift: false}",
        "json: {when: 2020-01-01}",
        "2020-01-01",
        "journeys.checkout.steps[1].json",
        "cannot be sent as JSON",
    ),
    "unknown journey service": (
        "services: [orders, payments]",
        "services: [orders, paymnts]",
        "paymnts",
        "journeys.reconcile.services[1]",
        "unknown service 'paymnts'",
    ),
    "steps and call": (
        "    call: examples",
        "    steps: [GET web /]\n    call: examples",
        "call: examples",
        "journeys.reconcile.call",
        "not both",
    ),
    "neither steps nor call": (
        "    call: examples.shop.journeys:reconcile\n",
        "",
        "  reconcile:",
        "journeys.reconcile",
        "give 'steps' (HTTP calls) or 'call'",
    ),
    "empty steps": (
        BASE[BASE.index("    steps:") : BASE.index("    slo:")],
        "    steps: []\n",
        "steps: []",
        "journeys.checkout.steps",
        "at least one step",
    ),
    "bad call": (
        "examples.shop.journeys:reconcile",
        "examples.shop.journeys.reconcile",
        "examples.shop",
        "journeys.reconcile.call",
        "not 'module:attribute'",
    ),
    "bad call attribute": (
        "examples.shop.journeys:reconcile",
        "examples.shop:1st",
        "examples.shop",
        "journeys.reconcile.call",
        "not 'module:attribute'",
    ),
    "customers 0": (
        "customers: 3",
        "customers: 0",
        "customers",
        "journeys.checkout.customers",
        "between 1 and 1000",
    ),
    "interval 0": (
        "interval: 200ms",
        "interval: 0ms",
        "interval",
        "journeys.checkout.interval",
        "longer than zero",
    ),
    "success 0": (
        "success: 0.95",
        "success: 0",
        "success",
        "journeys.checkout.slo.success",
        "above 0",
    ),
    "success 1.5": (
        "success: 0.95",
        "success: 1.5",
        "success",
        "journeys.checkout.slo.success",
        "between 0.0 and 1.0",
    ),
    "slo unknown key": (
        "p95: 500ms",
        "p90: 500ms",
        "p90",
        "journeys.checkout.slo.p90",
        "(did you mean 'p99'?)",
    ),
    "journey tier 5": (
        "    customers: 3",
        "    customers: 3\n    tier: 5",
        "tier: 5",
        "journeys.checkout.tier",
        "between 1 and 4",
    ),
    "tier 5 modes": (
        "  tier2: [outage]",
        "  tier5: [outage]",
        "tier5",
        "failure_modes.tier5",
        "tier1..tier4",
    ),
    "tier twice": (
        "  tier2: [outage]",
        "  tier1: [outage]",
        "tier1:",
        "failure_modes.tier1",
        "tier 1 is listed twice",
    ),
    "mode twice": (
        "[latency, outage, kill]",
        "[latency, kill, kill]",
        "[latency, kill, kill]",
        "failure_modes.1[2]",
        "listed twice",
    ),
}


@pytest.mark.parametrize(("old", "new", "marker", "field", "says"), CASES.values(), ids=CASES)
def test_malformed_catalogs_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, marker: str, field: str | None, says: str
) -> None:
    text = edit(old, new)
    path = write(tmp_path, text)
    expect_error(
        lambda: load_catalog(path), file=path, line=line_of(text, marker), field=field, says=says
    )


@pytest.mark.parametrize(
    ("text", "line", "field", "says"),
    [
        ("version: 1\njourneys: {}\n", 1, "services", "required key 'services'"),
        ("version: 1\nservices: {}\n", 2, "services", "at least one entry under 'services'"),
        ("version: 1\nservices: [a]\n", 2, "services", "expected a mapping"),
        (
            "version: 1\nservices:\n  a: {tier: 1, port: 1}\njourneys: {}\n",
            4,
            "journeys",
            "at least one entry under 'journeys'",
        ),
        (
            "version: 1\nservices:\n  a: {tier: 1, port: 1}\njourneys:\n  j: {call: 'm:f'}\n",
            1,
            "failure_modes",
            "required key 'failure_modes'",
        ),
    ],
)
def test_required_sections(tmp_path: Path, text: str, line: int, field: str, says: str) -> None:
    path = write(tmp_path, text)
    expect_error(lambda: load_catalog(path), file=path, line=line, field=field, says=says)


# -- robustness: any mutation either loads or raises CatalogError ------------------------------


def _leaves(value: object, path: tuple = ()) -> list[tuple]:
    """Paths to every scalar (and, as a ('key', k) step, every mapping key) of a YAML document."""
    if isinstance(value, dict):
        found: list[tuple] = []
        for key, item in value.items():
            found.append((*path, ("key", key)))
            found.extend(_leaves(item, (*path, key)))
        return found
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, (*path, index))]
    return [path]


def _mutated(document: object, path: tuple, replacement: object) -> object:
    if not path:
        return replacement
    head, rest = path[0], path[1:]
    if isinstance(head, tuple):  # rename a key, keeping its value
        assert isinstance(document, dict)
        renamed = str(replacement)
        return {renamed if key == head[1] else key: item for key, item in document.items()}
    copy = document.copy() if isinstance(document, dict | list) else document
    copy[head] = _mutated(copy[head], rest, replacement)  # type: ignore[index]
    return copy


INTERESTING = st.sampled_from(
    [
        "5 parsecs",
        "-1",
        "0",
        "0s",
        "{prt}",
        "a -> a",
        "web -> nope",
        "1e999",
        "nan",
        "tier9",
        "/x/{id}",
        "GET",
        "mod:",
        "::",
        "no",
        "~",
        "",
        "orders",
        "[unclosed",
    ]
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=string.printable, max_size=12),
    INTERESTING,
    st.lists(st.integers(0, 700), max_size=3),
    st.dictionaries(st.sampled_from(["a", "tier", "port", "from"]), st.integers(), max_size=2),
)
DOCUMENT = yaml.safe_load(BASE)
LEAVES = _leaves(DOCUMENT)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(0, len(LEAVES) - 1), value=VALUES)
def test_any_scalar_mutation_loads_or_raises_catalog_error(
    tmp_path: Path, index: int, value: object
) -> None:
    document = _mutated(DOCUMENT, LEAVES[index], value)
    path = write(tmp_path, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    try:
        load_catalog(path, fault_kinds={"latency", "outage", "kill"})
    except CatalogError as err:
        assert err.file == str(path) and err.reason


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(0, len(BASE)), junk=st.text(max_size=4), cut=st.integers(0, 3))
def test_any_text_splice_loads_or_raises_catalog_error(
    tmp_path: Path, position: int, junk: str, cut: int
) -> None:
    text = BASE[:position] + junk + BASE[position + cut :]
    path = write(tmp_path, text)
    try:
        load_catalog(path)
    except CatalogError as err:
        assert err.file == str(path) and err.reason
