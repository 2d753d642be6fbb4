"""latency: delay every chunk by `latency` ± `jitter` milliseconds, keeping order."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faults.proxy.core import Stage
from faults.proxy.toxics.base import ToxicAttributes, attribute


@dataclass(frozen=True)
class Latency(ToxicAttributes):
    type_name = "latency"
    latency: int = attribute("ms")
    jitter: int = attribute("ms")

    def stage(self, rng: random.Random) -> Stage:
        return LatencyStage(self, rng)


class LatencyStage(Stage):
    """Each chunk leaves `delay` after it was read, but never before the previous one."""

    def __init__(self, toxic: Latency, rng: random.Random) -> None:
        super().__init__()
        self._toxic = toxic
        self._rng = rng

    def _delay(self) -> float:
        ms = self._toxic.latency
        if self._toxic.jitter:
            ms += self._rng.randint(-self._toxic.jitter, self._toxic.jitter)
        return max(ms, 0) / 1000

    def on_data(self, data: bytes, at: float) -> None:
        self._emit(at + self._delay(), data)
