"""slow_close: delay the close (FIN) by `delay` milliseconds after the source has closed."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faults.proxy.core import Signal, Stage
from faults.proxy.toxics.base import ToxicAttributes, attribute


@dataclass(frozen=True)
class SlowClose(ToxicAttributes):
    type_name = "slow_close"
    delay: int = attribute("ms")

    def stage(self, rng: random.Random) -> Stage:
        return SlowCloseStage(self.delay / 1000)


class SlowCloseStage(Stage):
    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self._delay = delay_s

    def on_end(self, signal: Signal, at: float) -> None:
        self._emit(at + self._delay if signal is Signal.EOF else at, signal)
