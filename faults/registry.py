"""The one place fault kinds and revert-recipe actions are registered, listed explicitly."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from chaos.errors import FaultError, UnknownFaultKind
from faults import container, network, outage, process
from faults.base import Fault, Recipe

_EDGE_MODULES: tuple[ModuleType, ...] = (
    network,
    outage,
)  # kinds that act on edges (through a proxy)
_SERVICE_MODULES: tuple[ModuleType, ...] = (process, container)  # kinds that act on services
_MODULES = (*_EDGE_MODULES, *_SERVICE_MODULES)

FAULT_KINDS: Mapping[str, type[Fault]] = {
    kind.kind: kind for module in _MODULES for kind in module.KINDS
}


def _nothing() -> None:
    """The recipe of a fault that needs no revert (a crash heals itself or not at all)."""


EDGE_KINDS: frozenset[str] = frozenset(k.kind for m in _EDGE_MODULES for k in m.KINDS)

RECIPE_ACTIONS: Mapping[str, Callable[..., None]] = {
    "none": _nothing,
    **{name: action for module in _MODULES for name, action in module.RECIPE_ACTIONS.items()},
}


def fault_kind(name: str) -> type[Fault]:
    """The fault class registered under `name`; UnknownFaultKind lists the valid names."""
    try:
        return FAULT_KINDS[name]
    except KeyError:
        valid = ", ".join(sorted(FAULT_KINDS))
        raise UnknownFaultKind(f"unknown fault kind {name!r}; valid kinds: {valid}") from None


def run_recipe(recipe: Recipe) -> None:
    """Execute a revert recipe read back from a ledger."""
    action = RECIPE_ACTIONS.get(recipe.action)
    if action is None:
        valid = ", ".join(sorted(RECIPE_ACTIONS))
        raise FaultError(
            f"ledger recipe names unknown action {recipe.action!r} (known: {valid}); "
            "was it written by a newer pytest-chaos?"
        )
    action(**dict(recipe.args))


def make_fault(kind: str, target: str, **params: Any) -> Fault:
    """Build a fault from its kind name (used by generated matrices and schedules)."""
    return fault_kind(kind)(target, **params)  # type: ignore[call-arg]
