"""Running one fault schedule as the fault window of one experiment, never losing an interrupt.

`run_schedule` applies and reverts each fault at its offset, and on any exit — a failed apply,
Ctrl-C, SIGTERM — reverts every fault still active, newest first; `expect_tolerated` is the
verdict that every journey held its SLO meanwhile. Kept apart from chaos.schedules, the
Hypothesis search that calls them once per example: running (or replaying) one given schedule
is a concern of its own, with its own revert and interrupt rules, and reads better without the
search around it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from chaos.errors import ImpactExceeded
from chaos.experiment import Experiment
from chaos.phases import Phase
from chaos.report.tables import impact_table
from chaos.strategies import Schedule

POLL = 0.05  # longest single sleep while waiting for the next event of a schedule


class InterruptLatch:
    """Remembers SIGINT / SIGTERM so that an interrupt CPython lost is raised again at `check()`.

    A KeyboardInterrupt raised while the main thread runs a finalizer (an HTTP response or a
    socket collected by the GC) is printed as "Exception ignored" and dropped; the search would
    then go on. The latch calls the previous handler as usual and also keeps the signal number.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], Any]] = {}

    def __enter__(self) -> InterruptLatch:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous = signal.getsignal(signum)
                if callable(previous):
                    self._previous[signum] = previous
                    signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        self._previous[signum](signum, frame)

    def check(self) -> None:
        """Raise the interrupt again (through the previous handler) if one arrived."""
        if self.received is not None and self.received in self._previous:
            self._previous[self.received](self.received, None)
        if self.received is not None:
            raise KeyboardInterrupt(f"{signal.Signals(self.received).name} during the search")


def run_schedule(
    experiment: Experiment, schedule: Schedule, *, clock: Callable[[], float] = time.monotonic
) -> None:
    """Apply and revert every fault at its offset, as one fault window of `experiment`.

    Takes the baseline first if needed. Faults still active when anything is raised — a failed
    apply, KeyboardInterrupt, SIGTERM — are reverted, newest first, before it propagates.
    """
    with InterruptLatch() as latch:
        if experiment.phase is Phase.READY:
            experiment.baseline()
        latch.check()
        _run_events(experiment, schedule, clock, latch)


def _run_events(
    experiment: Experiment,
    schedule: Schedule,
    clock: Callable[[], float],
    latch: InterruptLatch,
) -> None:
    with experiment.inject():  # one window around the whole schedule, gaps included
        started = clock()
        active: dict[int, contextlib.AbstractContextManager[Any]] = {}
        try:
            for at, apply, index in schedule.events():
                _sleep_until(started + at, clock, latch)
                if not apply:
                    active.pop(index).__exit__(None, None, None)
                    continue
                injection = experiment.inject(schedule.faults[index].fault)
                injection.__enter__()
                if schedule.faults[index].duration > 0:
                    active[index] = injection
                else:  # instant: a crash or restart ends as it happens
                    injection.__exit__(None, None, None)
        finally:
            _revert_all(active)


def _sleep_until(deadline: float, clock: Callable[[], float], latch: InterruptLatch) -> None:
    latch.check()
    while (left := deadline - clock()) > 0:  # bounded by the schedule's span
        time.sleep(min(left, POLL))
        latch.check()


def _revert_all(active: dict[int, contextlib.AbstractContextManager[Any]]) -> None:
    """Leave every active injection, newest first; the first revert error is raised at the end."""
    errors: list[BaseException] = []
    for index in reversed(list(active)):
        try:
            active.pop(index).__exit__(None, None, None)
        except Exception as err:  # keep reverting the others
            errors.append(err)
    if errors:
        raise errors[0]


def expect_tolerated(experiment: Experiment) -> None:
    """Every journey met its SLO during the schedule's fault window, else ImpactExceeded."""
    impacts = experiment.impacts()
    broken = sorted(name for name, imp in impacts.items() if not imp.slo_held)
    if broken:
        reasons = "; ".join(f"{n}: {', '.join(impacts[n].slo_reasons)}" for n in broken)
        raise ImpactExceeded(
            f"{experiment.name}: the SLO of {', '.join(broken)} broke during the schedule "
            f"({reasons})\n{impact_table(impacts)}"
        )
