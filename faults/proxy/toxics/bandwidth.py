"""bandwidth: let at most `rate` KB/s (1 KB = 1000 bytes) through; rate 0 holds everything."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faults.proxy.core import FOREVER, Stage
from faults.proxy.toxics.base import ToxicAttributes, attribute

SLICE_SECONDS = 0.1  # large chunks are released in 100 ms slices, as Toxiproxy does


@dataclass(frozen=True)
class Bandwidth(ToxicAttributes):
    type_name = "bandwidth"
    rate: int = attribute("KB/s")

    def stage(self, rng: random.Random) -> Stage:
        return BandwidthStage(self.rate)


class BandwidthStage(Stage):
    """A leaky bucket: each byte takes 1/(rate*1000) s and waits for the bytes before it."""

    def __init__(self, rate_kbps: int) -> None:
        super().__init__()
        self._bytes_per_s = rate_kbps * 1000
        self._free_at = float("-inf")

    def on_data(self, data: bytes, at: float) -> None:
        if not self._bytes_per_s:
            self._emit(FOREVER, data)  # released only when the toxic is removed
            return
        step = max(1, int(self._bytes_per_s * SLICE_SECONDS))
        t = max(at, self._free_at)
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            t += len(piece) / self._bytes_per_s
            self._emit(t, piece)
        self._free_at = t
