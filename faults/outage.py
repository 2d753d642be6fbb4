"""Outage of an edge: its proxy is disabled (connections closed, port refuses) until reverted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from chaos.errors import FaultError, ProxyError
from faults.base import Injection, Recipe
from faults.proxy.client import ToxiproxyClient

if TYPE_CHECKING:
    from chaos.environments.base import Environment


@dataclass(frozen=True)
class Outage:
    """The dependency behind `target` (an edge) is unreachable: connection refused."""

    kind: ClassVar[str] = "outage"
    target: str

    def params(self) -> dict[str, Any]:
        return {}

    def plan(self, env: Environment) -> Injection:
        edge = env.catalog.edge(self.target)
        client = env.proxy()
        proxy = env.proxy_name(edge)
        recipe = Recipe("proxy.enable", {"api": client.url, "proxy": proxy})

        def apply() -> None:
            try:
                client.update_proxy(proxy, enabled=False)
            except ProxyError as err:
                raise FaultError(f"cannot take {edge.name} down: {err}") from err

        return Injection(
            description=f"outage of {edge.name} (proxy {proxy} disabled)",
            recipe=recipe,
            apply=apply,
            revert=lambda: enable_recipe(**recipe.args),
        )


def outage(edge: str) -> Outage:
    """Take the edge down: its proxy stops listening and drops its connections."""
    return Outage(edge)


def enable_recipe(*, api: str, proxy: str) -> None:
    """Recipe action: re-enable a proxy; idempotent, and a proxy that is gone counts as done."""
    try:
        ToxiproxyClient(api).update_proxy(proxy, enabled=True)
    except ProxyError as err:
        if getattr(err, "status", None) not in (404, None):
            raise


KINDS: tuple[type, ...] = (Outage,)
RECIPE_ACTIONS: dict[str, Callable[..., None]] = {"proxy.enable": enable_recipe}
