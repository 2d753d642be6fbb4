"""Failure-mode coverage: which modes the catalog requires per tier, and which no experiment covered."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.catalog import Catalog
from chaos.record import ExperimentRecord


@dataclass(frozen=True, order=True)
class FailureMode:
    """The unit of coverage: a fault kind on a service, or on an edge into that service."""

    service: str
    kind: str
    target: str  # the service itself, or an edge "consumer -> provider" for network kinds
    tier: int = field(default=4, compare=False)

    @property
    def id(self) -> str:
        """A pytest id: 'latency-orders->payments', 'kill-payments'."""
        return f"{self.kind}-{self.target.replace(' ', '')}"

    def fault(self, **params: Any) -> Any:
        """Build this mode's fault with the given parameters (e.g. ms=800 for latency)."""
        from faults.registry import make_fault

        return make_fault(self.kind, self.target, **params)


def required_modes(
    catalog: Catalog,
    edge_kinds: Collection[str],
    *,
    tier: int | None = None,
    kinds: Collection[str] | None = None,
) -> list[FailureMode]:
    """Every mode the catalog's `failure_modes` requires, in tier then restore order.

    A network kind (one that acts on edges) is required on every edge *into* the service: a slow
    payments service is what its consumers feel through the edge `orders -> payments`.
    """
    services = sorted(catalog.services.values(), key=lambda s: (s.tier, s.restore_order, s.name))
    modes: list[FailureMode] = []
    for service in services:
        if tier is not None and service.tier != tier:
            continue
        for kind in catalog.required_modes_for(service.tier):
            if kinds is not None and kind not in kinds:
                continue
            on_edges = kind in edge_kinds
            targets = (
                [e.name for e in catalog.edges_to(service.name)] if on_edges else [service.name]
            )
            modes += [FailureMode(service.name, kind, t, service.tier) for t in targets]
    return modes


@dataclass(frozen=True)
class Coverage:
    """Required modes split into covered (with the records that cover them) and missing."""

    covered: Mapping[FailureMode, Sequence[ExperimentRecord]]
    missing: Sequence[FailureMode]

    @property
    def ratio(self) -> float:
        total = len(self.covered) + len(self.missing)
        return 1.0 if total == 0 else len(self.covered) / total


def coverage(required: Iterable[FailureMode], records: Sequence[ExperimentRecord]) -> Coverage:
    """Match required modes against the faults experiments actually injected."""
    injected: dict[tuple[str, str], list[ExperimentRecord]] = {}
    for record in records:
        for fault in record.faults:
            injected.setdefault((fault.kind, fault.target.replace(" ", "")), []).append(record)
    covered: dict[FailureMode, list[ExperimentRecord]] = {}
    missing: list[FailureMode] = []
    for mode in required:
        found = injected.get((mode.kind, mode.target.replace(" ", "")))
        if found:
            covered[mode] = found
        else:
            missing.append(mode)
    return Coverage(covered, missing)
