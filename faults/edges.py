"""What every edge fault shares: find the edge's proxy, call it, and treat "already gone" as reverted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chaos.errors import FaultError, ProxyError
from faults.proxy.client import ToxiproxyClient

if TYPE_CHECKING:
    from chaos.catalog import Edge
    from chaos.environments.base import Environment


@dataclass(frozen=True)
class EdgeProxy:
    """The proxy carrying one catalog edge, on the environment's admin API."""

    edge: Edge
    client: ToxiproxyClient
    name: str

    @classmethod
    def of(cls, env: Environment, target: str) -> EdgeProxy:
        """Resolve `target` (UnknownTarget for an edge the catalog lacks) before anything happens."""
        edge = env.catalog.edge(target)
        return cls(edge, env.proxy(), env.proxy_name(edge))

    def inject(self, what: str, call: Callable[[], object]) -> None:
        """Run an admin call that injects; a refusal is a FaultError naming the edge."""
        try:
            call()
        except ProxyError as err:
            raise FaultError(f"cannot {what} on {self.edge.name}: {err}") from err


def unless_gone(call: Callable[[], object]) -> None:
    """Run a revert; 404 (already removed) or unreachable (the proxy died with its owner) is done."""
    try:
        call()
    except ProxyError as err:
        if err.status not in (404, None):
            raise


def admin(api: str) -> ToxiproxyClient:
    """The admin client a revert recipe uses (a fresh process has nothing but the URL)."""
    return ToxiproxyClient(api)
