"""Required failure modes come from the catalog; coverage matches them against injected faults."""

from __future__ import annotations

from pathlib import Path

from chaos.catalog import load_catalog
from chaos.coverage import FailureMode, coverage, required_modes
from chaos.impact import Outcome
from chaos.record import ExperimentRecord, FaultRecord
from faults.registry import EDGE_KINDS

CATALOG = """
version: 1
services:
  web: {tier: 1, port: 8000, depends_on: [orders]}
  orders: {tier: 1, port: 8001, depends_on: [cache]}
  cache: {tier: 2, port: 6379}
edges:
  - web -> orders
  - orders -> cache
  - web -> cache
journeys:
  browse: {steps: ["GET web /"]}
failure_modes:
  1: [latency, kill]
  2: [outage]
"""


def _record(*faults: tuple[str, str]) -> ExperimentRecord:
    return ExperimentRecord(
        test_id="t",
        name="t",
        outcome=Outcome.TOLERATED,
        services=(),
        impacts={},
        baseline={},
        faults=tuple(FaultRecord(k, t, {}, f"{k} {t}", 0.0, 1.0) for k, t in faults),
        phases=(),
        rto=None,
        ttr=None,
        seed=0,
    )


def test_network_kinds_are_required_on_every_edge_into_the_service(tmp_path: Path) -> None:
    (tmp_path / "chaos.yaml").write_text(CATALOG)
    catalog = load_catalog(tmp_path / "chaos.yaml")
    modes = required_modes(catalog, EDGE_KINDS)
    assert [(m.kind, m.target) for m in modes] == [
        ("latency", "web -> orders"),
        ("kill", "orders"),  # orders restores before web
        ("kill", "web"),  # web has no edge into it: latency on web needs no experiment
        ("outage", "orders -> cache"),
        ("outage", "web -> cache"),
    ]
    assert [m.id for m in required_modes(catalog, EDGE_KINDS, tier=2)] == [
        "outage-orders->cache",
        "outage-web->cache",
    ]
    assert required_modes(catalog, EDGE_KINDS, kinds=["kill"]) == [
        FailureMode("orders", "kill", "orders"),
        FailureMode("web", "kill", "web"),
    ]


def test_coverage_splits_covered_and_missing(tmp_path: Path) -> None:
    (tmp_path / "chaos.yaml").write_text(CATALOG)
    required = required_modes(load_catalog(tmp_path / "chaos.yaml"), EDGE_KINDS)
    cov = coverage(
        required,
        [_record(("kill", "orders"), ("latency", "web->orders")), _record(("kill", "web"))],
    )
    assert {m.id for m in cov.covered} == {"kill-orders", "latency-web->orders", "kill-web"}
    assert [m.id for m in cov.missing] == ["outage-orders->cache", "outage-web->cache"]
    assert cov.ratio == 3 / 5
