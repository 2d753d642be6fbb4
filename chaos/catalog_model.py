"""The catalog's typed objects: services, edges, journeys with their steps and SLO, the Catalog.

chaos.catalog reads chaos.yaml into these and validates it; most of its lines are that reading,
so the model that every other module works with (and its queries: an edge by its arrow, the
restore order, the journeys touching a service) is kept here, readable on its own. Import the
names from chaos.catalog as before: it re-exports all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import UnknownTarget
from chaos.yamlsource import did_you_mean

TIERS = (1, 2, 3, 4)
EDGE_ARROW = re.compile(r"^\s*(?P<consumer>\S+?)\s*(?:->|→)\s*(?P<provider>\S+)\s*$")


@dataclass(frozen=True)
class Slo:
    """What customers must see for a journey to count as healthy."""

    success: float = 0.99
    p95: float | None = None
    p99: float | None = None


@dataclass(frozen=True)
class Service:
    """One unit of the system under test, with its business tier and recovery objective."""

    name: str
    tier: int
    description: str
    depends_on: tuple[str, ...]
    restore_order: int
    rto: float
    port: int
    health: str  # "tcp" or an HTTP path such as "/health"

    @property
    def health_path(self) -> str | None:
        """The HTTP path to GET for health, or None when a TCP connect is the check."""
        return None if self.health == "tcp" else self.health


@dataclass(frozen=True)
class Edge:
    """A dependency consumer -> provider; network faults act here, through a proxy."""

    consumer: str
    provider: str
    env: str
    url: str = "{host}:{port}"

    @property
    def name(self) -> str:
        return f"{self.consumer} -> {self.provider}"

    def address(self, host: str, port: int) -> str:
        """The value the consumer's `env` variable gets when the provider is at host:port."""
        return self.url.format(host=host, port=port)


@dataclass(frozen=True)
class HttpStep:
    """One HTTP call of a journey; an empty `expect` accepts any 2xx."""

    method: str
    service: str
    path: str
    json: Any = None
    expect: tuple[int, ...] = ()

    def accepts(self, status: int) -> bool:
        return status_accepted(status, self.expect)

    def render_path(self, customer: int, seq: int) -> str:
        """The path with {customer} and {seq} filled in for one attempt."""
        return fill_placeholders(self.path, customer, seq)


def status_accepted(status: int, expect: Sequence[int]) -> bool:
    """A step's rule: one of `expect`, or any 2xx when it lists none."""
    return status in expect if expect else 200 <= status < 300


def fill_placeholders(text: str, customer: int, seq: int) -> str:
    """Fill a path's or body string's {customer} and {seq} for one attempt of one customer."""
    return text.replace("{customer}", str(customer)).replace("{seq}", str(seq))


@dataclass(frozen=True)
class Journey:
    """An end-to-end customer action (HTTP steps or a Python callable) and its SLO."""

    name: str
    description: str
    tier: int
    services: tuple[str, ...]
    customers: int
    interval: float
    timeout: float
    steps: tuple[HttpStep, ...]
    call: str | None
    slo: Slo = field(default_factory=Slo)


@dataclass(frozen=True)
class Catalog:
    """Services, edges, journeys and required failure modes of one system."""

    path: Path
    name: str
    services: Mapping[str, Service]
    edges: tuple[Edge, ...]
    journeys: Mapping[str, Journey]
    required_modes: Mapping[int, tuple[str, ...]]
    environments: Mapping[str, Path]

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise _unknown("service", name, list(self.services), self.path) from None

    def edge(self, spec: str) -> Edge:
        """The edge named "orders -> payments" (also "orders->payments", "orders → payments")."""
        names = [edge.name for edge in self.edges]
        match = EDGE_ARROW.match(spec)
        if match:
            for edge in self.edges:
                if (edge.consumer, edge.provider) == (match["consumer"], match["provider"]):
                    return edge
        raise _unknown("edge", spec, names, self.path)

    def target(self, spec: str) -> Service | Edge:
        """A service by name, or an edge when `spec` has an arrow."""
        if EDGE_ARROW.match(spec):
            return self.edge(spec)
        if spec in self.services:
            return self.services[spec]
        valid = [*self.services, *(edge.name for edge in self.edges)]
        raise _unknown("service or edge", spec, valid, self.path)

    def restore_sequence(self) -> list[str]:
        """Service names in the order to bring them back: restore_order, then name."""
        ordered = sorted(self.services.values(), key=lambda s: (s.restore_order, s.name))
        return [service.name for service in ordered]

    def edges_from(self, service: str) -> list[Edge]:
        self.service(service)
        return [edge for edge in self.edges if edge.consumer == service]

    def edges_to(self, service: str) -> list[Edge]:
        self.service(service)
        return [edge for edge in self.edges if edge.provider == service]

    def journeys_touching(self, service: str) -> list[Journey]:
        self.service(service)
        return [journey for journey in self.journeys.values() if service in journey.services]

    def required_modes_for(self, tier: int) -> tuple[str, ...]:
        return self.required_modes.get(tier, ())


def _unknown(kind: str, name: str, valid: list[str], path: Path) -> UnknownTarget:
    listing = ", ".join(valid) or "(none)"
    hint = did_you_mean(name, valid)
    return UnknownTarget(f"unknown {kind} {name!r}{hint}; the catalog {path} declares: {listing}")
