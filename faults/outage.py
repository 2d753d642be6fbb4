"""Outage of an edge: its proxy is disabled (connections closed, port refuses) until reverted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from faults.base import Injection, Recipe
from faults.edges import EdgeProxy, admin, unless_gone

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
        edge = EdgeProxy.of(env, self.target)
        recipe = Recipe("proxy.enable", {"api": edge.client.url, "proxy": edge.name})
        return Injection(
            description=f"outage of {edge.edge.name} (proxy {edge.name} disabled)",
            recipe=recipe,
            apply=lambda: edge.inject(
                "take down", lambda: edge.client.update_proxy(edge.name, enabled=False)
            ),
            revert=lambda: enable_recipe(**recipe.args),
        )


def outage(edge: str) -> Outage:
    """Take the edge down: its proxy stops listening and drops its connections."""
    return Outage(edge)


def enable_recipe(*, api: str, proxy: str) -> None:
    """Recipe action: re-enable a proxy; idempotent, and a proxy that is gone counts as done."""
    unless_gone(lambda: admin(api).update_proxy(proxy, enabled=True))


KINDS: tuple[type, ...] = (Outage,)
RECIPE_ACTIONS: dict[str, Callable[..., None]] = {"proxy.enable": enable_recipe}
