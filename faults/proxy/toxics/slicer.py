"""slicer: cut chunks into pieces of about `average_size` ± `size_variation` bytes, `delay` µs apart."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faults.proxy.core import Stage
from faults.proxy.errors import BadRequest
from faults.proxy.toxics.base import ToxicAttributes, attribute


@dataclass(frozen=True)
class Slicer(ToxicAttributes):
    type_name = "slicer"
    average_size: int = attribute("bytes")
    size_variation: int = attribute("bytes")
    delay: int = attribute("µs")

    def check(self) -> None:
        if self.average_size < 1:
            raise BadRequest(
                f"slicer: average_size must be at least 1 byte, got {self.average_size}"
            )
        if self.size_variation >= self.average_size:
            raise BadRequest(
                f"slicer: size_variation ({self.size_variation}) must be smaller than "
                f"average_size ({self.average_size})"
            )

    def stage(self, rng: random.Random) -> Stage:
        return SlicerStage(self, rng)


class SlicerStage(Stage):
    def __init__(self, toxic: Slicer, rng: random.Random) -> None:
        super().__init__()
        self._toxic = toxic
        self._rng = rng
        self._free_at = float("-inf")

    def cuts(self, size: int) -> list[int]:
        """Offsets where pieces end: split in halves (± variation) until small enough."""
        out: list[int] = []
        stack = [(0, size)]
        while stack:
            start, end = stack.pop()
            if end - start <= self._toxic.average_size:
                out.append(end)
                continue
            mid = start + (end - start) // 2
            if self._toxic.size_variation:
                mid += self._rng.randint(-self._toxic.size_variation, self._toxic.size_variation)
            mid = min(max(mid, start + 1), end - 1)
            stack.append((mid, end))
            stack.append((start, mid))
        return out

    def on_data(self, data: bytes, at: float) -> None:
        t = max(at, self._free_at)
        step = self._toxic.delay / 1_000_000
        start = 0
        for end in self.cuts(len(data)):
            self._emit(t, data[start:end])
            start = end
            t += step
        self._free_at = t
