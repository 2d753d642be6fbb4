"""What every fault kind provides: a plan that is validated before anything is injected.

A fault is a small frozen description (kind, target, parameters). `plan(env)` resolves the target
against the environment's catalog (raising UnknownTarget / FaultError *before* any injection) and
returns an Injection: the live apply/revert pair plus a Recipe — a JSON-able instruction that a
fresh process (the sweeper, `chaos clean`) can execute to revert the fault after the owner died.
The Recipe is written to the ledger and fsynced before apply() runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from chaos.environments.base import Environment


@dataclass(frozen=True)
class Recipe:
    """How to undo a fault from a process that has nothing but this record.

    `action` names a function in faults.registry.RECIPE_ACTIONS; `args` are its JSON keyword args.
    An action must be idempotent and treat "already gone" (no such process, proxy unreachable
    because it died with its owner) as success.
    """

    action: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "args": dict(self.args)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recipe:
        return cls(action=str(data["action"]), args=dict(data.get("args", {})))


NOTHING_TO_REVERT = Recipe("none")


@dataclass
class Injection:
    """A planned fault: apply() injects it, revert() undoes it live; recipe is the crash fallback."""

    description: str
    recipe: Recipe
    apply: Callable[[], None]
    revert: Callable[[], None]
    instant: bool = False  # an event (a crash): the fault ends when applied, TTR counts from then


@runtime_checkable
class Fault(Protocol):
    """A fault kind. Implementations are frozen dataclasses with a class-level `kind` name."""

    kind: ClassVar[str]
    target: str

    def params(self) -> dict[str, Any]:
        """The fault's parameters as JSON-able values, with units in the key names (ms, kbps…)."""
        ...

    def plan(self, env: Environment) -> Injection:
        """Validate against env (raise before injecting anything) and return the injection."""
        ...


def describe(fault: Fault) -> str:
    """One-line human form: 'latency orders -> payments (latency_ms=800, jitter_ms=100)'."""
    params = ", ".join(f"{k}={v}" for k, v in fault.params().items())
    return f"{fault.kind} {fault.target}" + (f" ({params})" if params else "")
