"""Fault kinds and recipe actions are registered once, explicitly; unknown names list the valid ones."""

from __future__ import annotations

import pytest

from chaos.errors import FaultError, UnknownFaultKind
from faults import container, network, outage, process
from faults.base import Recipe
from faults.registry import (
    EDGE_KINDS,
    FAULT_KINDS,
    RECIPE_ACTIONS,
    fault_kind,
    make_fault,
    run_recipe,
)


def test_every_module_kind_is_registered_once() -> None:
    modules = (network, outage, process, container)
    declared = [kind.kind for module in modules for kind in module.KINDS]
    assert len(declared) == len(set(declared)) == len(FAULT_KINDS)
    assert {k.kind for m in (network, outage) for k in m.KINDS} == EDGE_KINDS
    assert {"kill", "stop", "pause", "restart", "disconnect"}.isdisjoint(EDGE_KINDS)


def test_unknown_kind_lists_the_valid_names() -> None:
    with pytest.raises(
        UnknownFaultKind,
        match=r"unknown fault kind 'latancy'; valid kinds: bandwidth, disconnect, kill, latency",
    ):
        fault_kind("latancy")


def test_make_fault_builds_the_registered_class() -> None:
    fault = make_fault("latency", "orders -> payments", ms=800)
    assert isinstance(fault, network.Latency) and fault.params()["latency_ms"] == 800
    assert make_fault("kill", "payments") == process.Kill("payments")


def test_recipes_with_unknown_actions_are_refused_with_a_hint() -> None:
    with pytest.raises(FaultError, match=r"unknown action 'teleport'.*newer pytest-chaos"):
        run_recipe(Recipe("teleport"))
    run_recipe(Recipe("none"))
    assert "proxy.remove_toxic" in RECIPE_ACTIONS and "process.kill_group" in RECIPE_ACTIONS
