"""timeout: stop all data; close after `timeout` ms without input (0 = hold until removed).

As in Toxiproxy, the data is dropped (the peer waits in vain) and removing the toxic closes the
connections it held: their streams lost bytes, so they cannot continue.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faults.proxy.core import Signal, Stage, Timed
from faults.proxy.toxics.base import ToxicAttributes, attribute


@dataclass(frozen=True)
class Timeout(ToxicAttributes):
    type_name = "timeout"
    timeout: int = attribute("ms")

    def stage(self, rng: random.Random) -> Stage:
        return TimeoutStage(self.timeout / 1000)


class TimeoutStage(Stage):
    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout = timeout_s
        self._since: float | None = None  # when the toxic joined, then the last input

    def on_data(self, data: bytes, at: float) -> None:
        self._since = at  # dropped; like Toxiproxy, input restarts the timer

    def on_end(self, signal: Signal, at: float) -> None:
        self._emit(at, Signal.CLOSE if signal is Signal.EOF else signal)

    def start(self, now: float) -> None:
        if self._since is None:
            self._since = now

    def deadline(self) -> float | None:
        own = super().deadline()
        if own is not None or not self._timeout or self._since is None:
            return own
        return self._since + self._timeout

    def pull(self, now: float) -> list[Timed]:
        out = super().pull(now)
        due = self.deadline()
        if not out and self._timeout and due is not None and now >= due:
            self._emit(due, Signal.CLOSE)
            out = super().pull(now)
        return out

    def drain(self, now: float) -> list[Timed]:
        return [*super().drain(now), Timed(now, Signal.CLOSE)]
