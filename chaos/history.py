"""Operation histories in the manner of Jepsen: what clients asked for and what they were told.

Each client operation is an `invoke` followed by its completion: `ok` (it happened), `fail` (it
certainly did not) or `info` (unknown: a timeout or a reset mid-request may or may not have taken
effect). Checkers (chaos.checkers) judge a History; it is built from probe samples, or recorded
directly by a Python journey with a Recorder.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chaos.errors import ExperimentMisuse
from chaos.impact import Sample


class OpType(Enum):
    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"  # indeterminate: may or may not have taken effect


# Error kinds (chaos.journey_http) after which the request certainly never reached the service.
# Anything else — timeout, connection-reset, 5xx — may have taken effect: indeterminate.
DEFINITE_FAILURES: frozenset[str] = frozenset({"connection-refused", "bad-url"})
_CLIENT_ERROR = re.compile(r"^http-4\d\d$")


def completion_type(error: str | None, definite: Iterable[str] = DEFINITE_FAILURES) -> OpType:
    """ok without error; fail when the error proves nothing happened (refused, 4xx); else info."""
    if error is None:
        return OpType.OK
    if error in set(definite) or _CLIENT_ERROR.match(error):
        return OpType.FAIL
    return OpType.INFO


@dataclass(frozen=True)
class Op:
    """One event of a history; `type` also accepts "invoke", "ok", "fail", "info"."""

    process: Hashable
    type: OpType
    f: str
    value: Any = None
    time: float = 0.0
    error: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, OpType):
            try:
                object.__setattr__(self, "type", OpType(self.type))
            except ValueError:
                valid = ", ".join(t.value for t in OpType)
                raise ExperimentMisuse(f"op type {self.type!r} is not one of {valid}") from None

    def __str__(self) -> str:
        error = f" ({self.error})" if self.error else ""
        return f"{self.process} {self.type.value} {self.f} {self.value!r}{error} @{self.time:.3f}"


@dataclass(frozen=True)
class Operation:
    """An invocation and its completion (None when the process never completed it: info)."""

    invoke: Op
    completion: Op | None

    @property
    def process(self) -> Hashable:
        return self.invoke.process

    @property
    def f(self) -> str:
        return self.invoke.f

    @property
    def type(self) -> OpType:
        return OpType.INFO if self.completion is None else self.completion.type

    @property
    def value(self) -> Any:
        """What the operation is known by: the ok result when it has one, else the invoked value."""
        done = self.completion
        if done is not None and done.type is OpType.OK and done.value is not None:
            return done.value
        return self.invoke.value

    @property
    def start(self) -> float:
        return self.invoke.time

    @property
    def end(self) -> float:
        """Completion time; never-completed operations may take effect at any later time."""
        return float("inf") if self.completion is None else self.completion.time

    def __str__(self) -> str:
        return str(self.completion or self.invoke)


@dataclass(frozen=True)
class History:
    """Ops in real-time order; every completion follows its process's invocation of the same f."""

    ops: tuple[Op, ...] = ()
    _operations: tuple[Operation, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "_operations", _pair(self.ops))

    @classmethod
    def from_samples(
        cls,
        samples: Iterable[Sample],
        *,
        f: str | Callable[[Sample], str] | None = None,
        definite: Iterable[str] = DEFINITE_FAILURES,
    ) -> History:
        """One operation per probe attempt: invoke at its start, complete at start + latency.

        process is "journey/customer"; f is the journey name unless given; the completion value
        is what a Python journey returned. Failed attempts are fail or info by error kind.
        """
        definite = frozenset(definite)
        ops: list[tuple[float, int, Op]] = []
        for s in samples:
            name = s.journey if f is None else (f if isinstance(f, str) else f(s))
            process = f"{s.journey}/{s.customer}"
            done = completion_type(None if s.ok else (s.error or "unknown"), definite)
            ops.append((s.t, 1, Op(process, OpType.INVOKE, name, None, s.t)))
            ops.append((s.end, 0, Op(process, done, name, s.value, s.end, s.error)))
        return cls(tuple(op for _, _, op in sorted(ops, key=lambda item: item[:2])))

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def operations(self, f: str | None = None) -> tuple[Operation, ...]:
        """Invocations paired with their completions, in invocation order (of one f if given)."""
        return tuple(op for op in self._operations if f is None or op.f == f)

    def then(self, *ops: Op) -> History:
        """This history with `ops` appended (e.g. a final read made at verify time)."""
        return History((*self.ops, *ops))


def _pair(ops: Sequence[Op]) -> tuple[Operation, ...]:
    """Match completions to invocations per process; a malformed history is refused."""
    pending: dict[Hashable, int] = {}
    invokes: list[Op] = []
    completions: dict[int, Op] = {}
    for position, op in enumerate(ops):
        open_index = pending.get(op.process)
        if op.type is OpType.INVOKE:
            if open_index is not None:
                raise ExperimentMisuse(
                    f"history op #{position} ({op}): process {op.process!r} invokes again before "
                    f"completing {invokes[open_index]}; a process runs one operation at a time"
                )
            pending[op.process] = len(invokes)
            invokes.append(op)
            continue
        if open_index is None or invokes[open_index].f != op.f:
            raise ExperimentMisuse(
                f"history op #{position} ({op}) completes nothing: process {op.process!r} has no "
                f"open {op.f!r} invocation"
            )
        completions[open_index] = op
        del pending[op.process]
    return tuple(Operation(inv, completions.get(i)) for i, inv in enumerate(invokes))


class PendingOp:
    """An invocation in flight; complete it once with ok(), fail() or info()."""

    def __init__(self, recorder: Recorder, process: Hashable, f: str, value: Any) -> None:
        self._recorder = recorder
        self.process = process
        self.f = f
        self.value = value
        self.done = False

    def ok(self, value: Any = None) -> None:
        self._complete(OpType.OK, self.value if value is None else value)

    def fail(self, error: str = "failed") -> None:
        self._complete(OpType.FAIL, self.value, error)

    def info(self, error: str = "indeterminate") -> None:
        self._complete(OpType.INFO, self.value, error)

    def _complete(self, kind: OpType, value: Any, error: str | None = None) -> None:
        if self.done:
            raise ExperimentMisuse(f"operation {self.f} of {self.process!r} is already complete")
        self.done = True
        self._recorder.add(Op(self.process, kind, self.f, value, self._recorder.now(), error))


class Recorder:
    """Thread-safe history that Python journeys write to as they run; bounded by `max_ops`.

    with RECORDER.op(ctx.customer, "write", order) as op:
        placed = ctx.http("POST", "web", "/checkout", json=order).json()
        op.ok(placed["order_id"])
    An exception completes the op as fail (definite error kinds) or info; no explicit completion
    and no exception is ok with the invoked value.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_ops: int = 1_000_000,
        definite: Iterable[str] = DEFINITE_FAILURES,
    ) -> None:
        self.now = clock
        self.max_ops = max_ops
        self.definite = frozenset(definite)
        self.dropped = 0  # ops not kept once max_ops was reached
        self._lock = threading.Lock()
        self._ops: list[Op] = []

    def add(self, op: Op) -> None:
        with self._lock:
            if len(self._ops) < self.max_ops:
                self._ops.append(op)
            else:
                self.dropped += 1

    def invoke(self, process: Hashable, f: str, value: Any = None) -> PendingOp:
        self.add(Op(process, OpType.INVOKE, f, value, self.now()))
        return PendingOp(self, process, f, value)

    @contextlib.contextmanager
    def op(self, process: Hashable, f: str, value: Any = None) -> Iterator[PendingOp]:
        pending = self.invoke(process, f, value)
        try:
            yield pending
        except BaseException as err:
            if not pending.done:
                kind = getattr(err, "kind", None) or type(err).__name__
                if completion_type(kind, self.definite) is OpType.FAIL:
                    pending.fail(kind)
                else:
                    pending.info(kind)
            raise
        if not pending.done:
            pending.ok()

    def history(self) -> History:
        """A snapshot; raises ExperimentMisuse when ops were dropped (the history is incomplete)."""
        with self._lock:
            ops, dropped = tuple(self._ops), self.dropped
        if dropped:
            raise ExperimentMisuse(
                f"the recorder dropped {dropped} ops past max_ops={self.max_ops}: its history is "
                "incomplete; raise max_ops or clear() it between experiments"
            )
        return History(ops)

    def clear(self) -> None:
        with self._lock:
            self._ops.clear()
            self.dropped = 0
