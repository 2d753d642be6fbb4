"""Hypothesis strategies that draw fault schedules from a catalog, shrinking toward simpler ones.

A Schedule is a few faults, each with a start offset and a duration inside a horizon. Faults come
from the catalog (network kinds on its edges, process kinds on its services) with parameters
inside declared bounds. Every choice is ordered so that Hypothesis' shrinking moves toward fewer
faults (list elements), simpler kinds (the first of KIND_ORDER), smaller parameters (the lower
bound), earlier starts and shorter durations — the smallest schedule that still breaks the system.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from hypothesis import strategies as st

from chaos.catalog import Catalog
from chaos.errors import ConfigError, FaultError
from chaos.units import format_duration, parse_duration
from faults.base import Fault, describe
from faults.registry import EDGE_KINDS, FAULT_KINDS, make_fault

SCHEDULE_VERSION = 1

# Simplest first: shrinking moves toward the front. An edge outage is the easiest failure to
# understand; process faults last, since they take longest to apply and to heal.
KIND_ORDER: tuple[str, ...] = (
    *("outage", "latency", "timeout", "reset_peer", "bandwidth", "limit_data", "slow_close"),
    *("slicer", "stop", "pause", "kill", "restart"),
)


@dataclass(frozen=True)
class Bound:
    """Inclusive range of one constructor field of a fault kind, in that field's unit, by `step`."""

    field: str
    lo: int
    hi: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.step < 1 or self.hi < self.lo:
            raise ConfigError(
                f"bound of {self.field!r}: need lo <= hi and step >= 1, got "
                f"lo={self.lo}, hi={self.hi}, step={self.step}"
            )

    def strategy(self) -> st.SearchStrategy[int]:
        """Values lo, lo+step, … hi; shrinks toward lo."""
        return st.integers(0, (self.hi - self.lo) // self.step).map(
            lambda k: self.lo + k * self.step
        )


DEFAULT_BOUNDS: Mapping[str, tuple[Bound, ...]] = MappingProxyType(
    {
        "outage": (),
        "latency": (Bound("ms", 100, 2000, 100), Bound("jitter", 0, 200, 50)),
        "timeout": (Bound("ms", 0, 2000, 100),),  # 0: hold the data until reverted
        "reset_peer": (Bound("ms", 0, 1000, 100),),
        "bandwidth": (Bound("kbps", 0, 100, 10),),  # 0: no data passes
        "limit_data": (Bound("bytes", 0, 4096, 256),),
        "slow_close": (Bound("ms", 100, 2000, 100),),
        "slicer": (Bound("average_size", 1, 64), Bound("delay_us", 0, 10_000, 1000)),
        "stop": (),
        "pause": (),
        "kill": (),
        "restart": (),
    }
)


@dataclass(frozen=True)
class ScheduledFault:
    """One fault of a schedule: applied `start` seconds in, reverted `duration` seconds later.

    Instant faults (a crash, a restart) have duration 0: they end as they happen.
    """

    fault: Fault
    start: float
    duration: float

    @property
    def end(self) -> float:
        return round(self.start + self.duration, 3)

    @property
    def instant(self) -> bool:
        return bool(getattr(type(self.fault), "instant", False))

    def describe(self) -> str:
        when = f"at {format_duration(self.start)}"
        span = "instant" if self.instant else f"for {format_duration(self.duration)}"
        return f"{when} {span}: {describe(self.fault)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.fault.kind,
            "target": self.fault.target,
            "args": _constructor_args(self.fault),
            "start": self.start,
            "duration": self.duration,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "schedule") -> ScheduledFault:
        try:
            kind, target = str(data["kind"]), str(data["target"])
            args = dict(data.get("args", {}))
            start, duration = float(data["start"]), float(data["duration"])
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(
                f"{where}: a fault needs kind, target, start and duration ({err!r}); got {data!r}"
            ) from None
        try:
            fault = make_fault(kind, target, **args)
        except TypeError as err:
            raise ConfigError(
                f"{where}: fault {kind} {target}: bad arguments {args!r}: {err}"
            ) from None
        return cls(fault, start, duration)


def _constructor_args(fault: Fault) -> dict[str, Any]:
    """Every constructor field but the target: enough for make_fault to rebuild the same fault."""
    if not dataclasses.is_dataclass(fault):
        raise FaultError(f"{describe(fault)}: schedules need dataclass faults to replay them")
    return {
        f.name: getattr(fault, f.name)
        for f in dataclasses.fields(fault)
        if f.init and f.name != "target"
    }


@dataclass(frozen=True)
class Schedule:
    """Faults with their offsets inside a horizon: one example of a schedule search."""

    faults: tuple[ScheduledFault, ...]
    horizon: float

    @property
    def span(self) -> float:
        """When the last fault ends (the schedule runs this long, not the whole horizon)."""
        return max((sf.end for sf in self.faults), default=0.0)

    def events(self) -> list[tuple[float, bool, int]]:
        """(time, apply?, index) in the order to run them; at equal times reverts come first.

        A fault of duration 0 (instant: a crash) has no revert event: it ends as it is applied.
        """
        events = [(sf.start, True, i) for i, sf in enumerate(self.faults)]
        events += [(sf.end, False, i) for i, sf in enumerate(self.faults) if sf.duration > 0]
        return sorted(events, key=lambda e: (e[0], e[1], e[2]))

    def describe(self) -> str:
        count = len(self.faults)
        head = f"{count} fault{'s' if count != 1 else ''} within {format_duration(self.horizon)}"
        return "\n".join([head + ":", *(f"  {sf.describe()}" for sf in self.faults)])

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SCHEDULE_VERSION,
            "horizon": self.horizon,
            "faults": [sf.to_json() for sf in self.faults],
        }

    def dumps(self) -> str:
        """Canonical JSON text: equal schedules give equal text (a cache key, a replay argument)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> Schedule:
        """Rebuild a schedule from to_json() / dumps() output, to replay it exactly."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as err:
                raise ConfigError(f"schedule JSON cannot be parsed: {err}") from None
        if not isinstance(data, Mapping) or data.get("version") != SCHEDULE_VERSION:
            raise ConfigError(
                f"not a version {SCHEDULE_VERSION} schedule: {data!r}; pass Schedule.to_json() "
                "output as recorded in the failure message or the journal"
            )
        faults = tuple(
            ScheduledFault.from_json(item, f"schedule fault #{n}")
            for n, item in enumerate(data.get("faults", []), start=1)
        )
        return cls(faults, float(data["horizon"]))


@dataclass(frozen=True)
class _Space:
    """What a schedule may contain, resolved and validated against the catalog once."""

    kinds: tuple[str, ...]
    targets: Mapping[str, tuple[str, ...]]
    bounds: Mapping[str, tuple[Bound, ...]]
    steps: int  # horizon in time steps
    min_steps: int  # shortest duration in time steps
    step: float  # seconds per time step


def _order(kinds: Collection[str]) -> tuple[str, ...]:
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    return tuple(sorted(dict.fromkeys(kinds), key=lambda k: (rank.get(k, len(rank)), k)))


def _targets(catalog: Catalog, kind: str, allowed: Collection[str] | None) -> tuple[str, ...]:
    names = [e.name for e in catalog.edges] if kind in EDGE_KINDS else list(catalog.services)
    if allowed is None:
        return tuple(names)
    wanted = {catalog.target(t).name for t in allowed}  # UnknownTarget for a typo
    return tuple(n for n in names if n in wanted)


def _space(
    catalog: Catalog,
    kinds: Collection[str] | None,
    targets: Collection[str] | None,
    bounds: Mapping[str, Sequence[Bound]] | None,
    timing: tuple[float, float, float],
) -> _Space:
    horizon, min_duration, step = timing
    all_bounds = {**DEFAULT_BOUNDS, **{k: tuple(v) for k, v in (bounds or {}).items()}}
    chosen = _order(kinds if kinds is not None else all_bounds)
    for kind in chosen:
        if kind not in FAULT_KINDS or kind not in all_bounds:
            raise ConfigError(
                f"fault_schedules(kinds=...): no schedulable fault kind {kind!r} (registered: "
                f"{', '.join(sorted(FAULT_KINDS))}); a new kind also needs bounds={{kind: ...}}"
            )
    found = {kind: _targets(catalog, kind, targets) for kind in chosen}
    usable = tuple(kind for kind in chosen if found[kind])
    if not usable:
        raise ConfigError(
            f"fault_schedules: none of the kinds {', '.join(chosen) or '(none)'} has a target in "
            f"the catalog {catalog.path} (edge kinds need edges, process kinds services)"
        )
    if not 0 < step <= min_duration <= horizon:
        raise ConfigError(
            f"fault_schedules: need 0 < step ({step}s) <= min_duration ({min_duration}s) "
            f"<= horizon ({horizon}s)"
        )
    return _Space(
        kinds=usable,
        targets=found,
        bounds=all_bounds,
        steps=round(horizon / step),
        min_steps=round(min_duration / step),
        step=step,
    )


@st.composite
def _scheduled_fault(draw: st.DrawFn, space: _Space) -> ScheduledFault:
    kind = draw(st.sampled_from(space.kinds))
    target = draw(st.sampled_from(space.targets[kind]))
    params = {b.field: draw(b.strategy()) for b in space.bounds[kind]}
    fault = make_fault(kind, target, **params)
    instant = bool(getattr(type(fault), "instant", False))
    start = draw(st.integers(0, space.steps - (0 if instant else space.min_steps)))
    length = 0 if instant else draw(st.integers(space.min_steps, space.steps - start))
    return ScheduledFault(fault, round(start * space.step, 3), round(length * space.step, 3))


def _slot(sf: ScheduledFault) -> tuple[str, ...]:
    """At most one process fault per service and one fault per (edge, kind) in a schedule.

    Two overlapping stops of one service cannot both be applied, and two outages of one edge
    would revert each other; different kinds on one edge (latency during an outage) are fine.
    """
    if sf.fault.kind in EDGE_KINDS:
        return ("edge", sf.fault.target, sf.fault.kind)
    return ("service", sf.fault.target)


def fault_schedules(
    catalog: Catalog,
    *,
    max_faults: int = 3,
    horizon: str | float = "6s",
    kinds: Collection[str] | None = None,
    targets: Collection[str] | None = None,
    min_faults: int = 1,
    min_duration: str | float = "500ms",
    step: str | float = "100ms",
    bounds: Mapping[str, Sequence[Bound]] | None = None,
) -> st.SearchStrategy[Schedule]:
    """Schedules of 1..max_faults faults from the catalog, starting and ending within `horizon`.

    kinds: fault kinds to draw (default: every kind with bounds); targets: edges / services to
    act on (default: all); times are multiples of `step`, non-instant faults last at least
    `min_duration`; bounds override DEFAULT_BOUNDS per kind.
    """
    if not 0 <= min_faults <= max_faults:
        raise ConfigError(
            f"fault_schedules: need 0 <= min_faults <= max_faults, got {min_faults} and {max_faults}"
        )
    seconds = _seconds("horizon", horizon)
    timing = (seconds, _seconds("min_duration", min_duration), _seconds("step", step))
    space = _space(catalog, kinds, targets, bounds, timing)
    faults = st.lists(
        _scheduled_fault(space), min_size=min_faults, max_size=max_faults, unique_by=_slot
    )
    return faults.map(lambda fs: Schedule(tuple(sorted(fs, key=_by_start)), seconds))


def _seconds(name: str, value: str | float) -> float:
    try:
        return parse_duration(value)
    except ValueError as err:
        raise ConfigError(f"fault_schedules({name}=...): {err}") from None


def _by_start(sf: ScheduledFault) -> tuple[float, float, str, str]:
    return (sf.start, sf.duration, sf.fault.kind, sf.fault.target)
