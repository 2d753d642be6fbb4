"""Ready checkers over operation histories (lost writes, duplicate effects, read-your-writes).

A checker is any callable History -> CheckResult; `custom` turns a function listing anomalies
into one. `history_invariant` adapts a checker to `experiment.verify(...)`, which passes the
environment: the history is taken at verify time, optionally with a final read made then.
Indeterminate (info) operations are never held against the system: an info write may be absent
or present; only acknowledged (ok) writes must be seen, only definite failures must not be.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from chaos.errors import InvariantViolated
from chaos.history import History, Op, Operation, OpType

if TYPE_CHECKING:
    from chaos.environments.base import Environment
    from chaos.experiment import Experiment

SHOWN = 10  # anomalies listed in one failure message at most


@dataclass(frozen=True)
class Anomaly:
    """One thing the history shows went wrong, with the operations that show it."""

    kind: str  # lost, duplicate, stale-read, failed-write-visible, no-final-read, …
    detail: str
    ops: tuple[Operation, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass(frozen=True)
class CheckResult:
    """A checker's verdict: valid, or the anomalies found; `stats` are counts for the report."""

    valid: bool
    anomalies: tuple[Anomaly, ...] = ()
    checker: str = ""
    stats: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, checker: str, anomalies: Iterable[Anomaly], **stats: int) -> CheckResult:
        found = tuple(anomalies)
        return cls(not found, found, checker, stats)

    def explain(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.stats.items())
        head = f"{self.checker}: {'valid' if self.valid else 'INVALID'}" + (
            f" ({counts})" if counts else ""
        )
        shown = [f"  {a}" for a in self.anomalies[:SHOWN]]
        more = len(self.anomalies) - SHOWN
        return "\n".join([head, *shown, *([f"  … and {more} more"] if more > 0 else [])])


class Checker(Protocol):
    def __call__(self, history: History) -> CheckResult: ...


def _identity(value: Any) -> Any:
    return value


def _final_read(history: History, read: str) -> Operation | None:
    reads = [op for op in history.operations(read) if op.type is OpType.OK]
    return reads[-1] if reads else None


def _elements(op: Operation, element: Callable[[Any], Hashable]) -> list[Hashable]:
    value = op.value
    items = value if isinstance(value, list | tuple | set | frozenset) else [value]
    return [element(item) for item in items]


def lost_writes(
    *, write: str = "write", read: str = "read", element: Callable[[Any], Hashable] = _identity
) -> Checker:
    """No acknowledged write lost: every ok write done before the final read is in that read.

    The final read is the last ok `read` (a collection); `element` maps a written value and each
    read item to what identifies it. A definitely failed write seen in the read is an anomaly too;
    info writes may go either way ("recovered" counts those seen).
    """

    def check(history: History) -> CheckResult:
        final = _final_read(history, read)
        writes = history.operations(write)
        if final is None:
            missing = Anomaly("no-final-read", f"no successful {read!r}: cannot tell what was kept")
            return CheckResult.of("lost writes", [missing], writes=len(writes))
        seen = set(_elements(final, element))
        anomalies: list[Anomaly] = []
        counts = Counter[str]()
        for op in writes:
            if op.value is None and op.type is not OpType.OK:
                continue  # an unacknowledged write of unknown value: nothing to look for
            key = element(op.value)
            if op.type is OpType.OK and op.end < final.start:
                counts["acknowledged"] += 1
                if key not in seen:
                    anomalies.append(Anomaly("lost", f"acknowledged {key!r} is missing", (op,)))
            elif op.type is OpType.FAIL and key in seen:
                detail = f"{key!r} failed definitely ({op.completion}) but was read"
                anomalies.append(Anomaly("failed-write-visible", detail, (op, final)))
            elif op.type is OpType.INFO and key in seen:
                counts["recovered"] += 1
        return CheckResult.of("lost writes", anomalies, lost=len(anomalies), **counts)

    return check


def duplicate_effects(
    *,
    read: str = "read",
    key: Callable[[Any], Hashable] = _identity,
    write: str | None = None,
) -> Checker:
    """No duplicate effect: no ok `read` holds two items with one key (an order paid twice).

    With `write`, two distinct ok writes acknowledged with the same key are duplicates too.
    """

    def check(history: History) -> CheckResult:
        anomalies: dict[Hashable, Anomaly] = {}
        for op in history.operations(read):
            if op.type is not OpType.OK:
                continue
            for item, count in Counter(_elements(op, key)).items():
                if count > 1 and item not in anomalies:
                    detail = f"{item!r} appears {count} times in one {read!r}"
                    anomalies[item] = Anomaly("duplicate", detail, (op,))
        if write is not None:
            acks: dict[Hashable, list[Operation]] = {}
            for op in history.operations(write):
                if op.type is OpType.OK:
                    acks.setdefault(key(op.value), []).append(op)
            for item, ops in acks.items():
                if len(ops) > 1:
                    detail = f"{len(ops)} {write!r} operations were acknowledged as {item!r}"
                    anomalies.setdefault(("ack", item), Anomaly("duplicate", detail, tuple(ops)))
        return CheckResult.of("duplicate effects", anomalies.values(), duplicates=len(anomalies))

    return check


def _contains(read_value: Any, element: Hashable) -> bool:
    if isinstance(read_value, list | tuple | set | frozenset):
        return element in read_value
    return read_value == element


def read_your_writes(
    *,
    write: str = "write",
    read: str = "read",
    session: Callable[[Operation], Hashable] = lambda op: op.process,
    contains: Callable[[Any, Hashable], bool] = _contains,
    latest_only: bool = False,
) -> Checker:
    """Within a session, a read that starts after an ok write completed must see that write.

    Sessions default to processes. A read's value is a collection (every acknowledged write must
    be in it) or a register (it must equal the write): pass `latest_only=True` for registers.
    """

    def check(history: History) -> CheckResult:
        anomalies: list[Anomaly] = []
        by_session: dict[Hashable, list[Operation]] = {}
        for op in history.operations():
            if op.f in (write, read) and op.type is OpType.OK:
                by_session.setdefault(session(op), []).append(op)
        reads = 0
        for ops in by_session.values():
            for op in (o for o in ops if o.f == read):
                reads += 1
                done = [w for w in ops if w.f == write and w.end < op.start]
                required = done[-1:] if latest_only else done
                missing = [w for w in required if not contains(op.value, w.value)]
                for w in missing:
                    detail = f"{op.process!r} wrote {w.value!r}, then read {op.value!r}"
                    anomalies.append(Anomaly("stale-read", detail, (w, op)))
        return CheckResult.of("read your writes", anomalies, reads=reads, stale=len(anomalies))

    return check


def custom(name: str, find: Callable[[History], Iterable[Anomaly | str]]) -> Checker:
    """Your own checker: `find` lists anomalies (Anomaly or plain text); none means valid."""

    def check(history: History) -> CheckResult:
        found = [a if isinstance(a, Anomaly) else Anomaly(name, str(a)) for a in find(history)]
        return CheckResult.of(name, found)

    return check


def all_of(*checkers: Checker) -> Checker:
    """Every checker must pass; the anomalies of all of them are reported."""

    def check(history: History) -> CheckResult:
        results = [c(history) for c in checkers]
        anomalies = [a for r in results for a in r.anomalies]
        name = " + ".join(r.checker for r in results)
        return CheckResult(all(r.valid for r in results), tuple(anomalies), name)

    return check


HistorySource = Callable[[], History]


def history_invariant(
    checker: Checker,
    source: HistorySource | History,
    *,
    final_read: Callable[[Environment], Any] | None = None,
    read: str = "read",
    name: str | None = None,
) -> Callable[[Environment], None]:
    """A check for `experiment.verify(...)`: judge the history; raise InvariantViolated if invalid.

    `final_read(env)` (e.g. list every order in the database) runs at verify time and is
    appended to the history as a `read` by process "verify" — what lost_writes compares against.
    """

    def verify_history(env: Environment) -> None:
        history = source if isinstance(source, History) else source()
        if final_read is not None:
            history = history.then(*_read_now(env, final_read, read))
        result = checker(history)
        if not result.valid:
            raise InvariantViolated(result.explain())

    verify_history.__name__ = name or "history invariant"
    return verify_history


def _read_now(env: Environment, final_read: Callable[[Environment], Any], f: str) -> list[Op]:
    invoked = time.monotonic()
    value = final_read(env)  # an error here is an error of the check, not an indeterminate read
    return [
        Op("verify", OpType.INVOKE, f, None, invoked),
        Op("verify", OpType.OK, f, value, time.monotonic()),
    ]


def journey_invariant(
    experiment: Experiment, journey: str, checker: Checker, **options: Any
) -> Callable[[Environment], None]:
    """history_invariant over the samples of one journey of `experiment` (taken at verify time)."""
    options.setdefault("name", f"{journey} history")
    return history_invariant(
        checker, lambda: History.from_samples(experiment.samples[journey]), **options
    )
