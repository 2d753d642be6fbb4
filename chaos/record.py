"""What one experiment leaves behind for reports: typed, JSON-able, no references to live objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos.errors import ChaosError
from chaos.impact import Impact, Outcome


@dataclass(frozen=True)
class FaultRecord:
    """A fault as injected: kind, target (service or edge), parameters and the active window."""

    kind: str
    target: str
    params: Mapping[str, Any]
    description: str
    applied_at: float  # seconds since the experiment started
    reverted_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "params": dict(self.params),
            "description": self.description,
            "applied_at": round(self.applied_at, 4),
            "reverted_at": None if self.reverted_at is None else round(self.reverted_at, 4),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRecord:
        return cls(**{**data, "params": dict(data["params"])})


@dataclass(frozen=True)
class PhaseTiming:
    """One phase's start and duration, in seconds since the experiment started."""

    name: str
    start: float
    seconds: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": round(self.start, 4),
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PhaseTiming:
        return cls(**data)


@dataclass(frozen=True)
class ExperimentRecord:
    """The journal entry of one experiment."""

    test_id: str
    name: str
    outcome: Outcome
    services: tuple[str, ...]  # services the faults act on (edge faults: the provider)
    faults: tuple[FaultRecord, ...]
    impacts: Mapping[str, Impact]
    baseline: Mapping[str, Mapping[str, Any]]  # per journey: steady-state figures before the fault
    phases: tuple[PhaseTiming, ...]
    rto: float | None
    ttr: float | None
    seed: int
    repairs: tuple[str, ...] = ()  # what our reconciler had to fix before this experiment
    error: str | None = None
    failure_mode: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "test_id": self.test_id,
            "name": self.name,
            "failure_mode": self.failure_mode,
            "outcome": self.outcome.value,
            "services": list(self.services),
            "faults": [f.to_json() for f in self.faults],
            "impact": {name: imp.to_json() for name, imp in self.impacts.items()},
            "baseline": {name: dict(fig) for name, fig in self.baseline.items()},
            "phases": [p.to_json() for p in self.phases],
            "rto": self.rto,
            "ttr": None if self.ttr is None else round(self.ttr, 4),
            "seed": self.seed,
            "repairs": list(self.repairs),
            "error": self.error,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExperimentRecord:
        """The inverse of to_json: `from_json(r.to_json()).to_json() == r.to_json()`.

        Raises ChaosError naming the experiment and the field when the JSON is not a record.
        """
        where = f"experiment record {data.get('test_id', '?')!r}"
        try:
            return cls(
                test_id=data["test_id"],
                name=data["name"],
                failure_mode=data.get("failure_mode", ""),
                outcome=Outcome(data["outcome"]),
                services=tuple(data["services"]),
                faults=tuple(FaultRecord.from_json(f) for f in data["faults"]),
                impacts={k: Impact.from_json(v) for k, v in data["impact"].items()},
                baseline={k: dict(v) for k, v in data["baseline"].items()},
                phases=tuple(PhaseTiming.from_json(p) for p in data["phases"]),
                rto=data["rto"],
                ttr=data["ttr"],
                seed=data["seed"],
                repairs=tuple(data.get("repairs", ())),
                error=data.get("error"),
                extra=dict(data.get("extra") or {}),
            )
        except KeyError as err:
            raise ChaosError(f"{where}: field {err.args[0]!r} is missing") from err
        except (TypeError, ValueError, AttributeError) as err:
            raise ChaosError(f"{where}: not a pytest-chaos experiment record ({err})") from err
