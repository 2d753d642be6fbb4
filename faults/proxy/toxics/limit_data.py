"""limit_data: let `bytes` bytes through on this connection, then close it."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faults.proxy.core import Signal, Stage
from faults.proxy.toxics.base import ToxicAttributes, attribute


@dataclass(frozen=True)
class LimitData(ToxicAttributes):
    type_name = "limit_data"
    bytes: int = attribute("bytes")

    def stage(self, rng: random.Random) -> Stage:
        return LimitDataStage(self.bytes)


class LimitDataStage(Stage):
    """Counts bytes per connection; an updated toxic keeps the count (Toxiproxy's state)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self.sent = 0
        self._closed = False

    def carry(self, old: Stage) -> None:
        if isinstance(old, LimitDataStage):
            self.sent = old.sent

    def on_data(self, data: bytes, at: float) -> None:
        if self._closed:
            return
        data = data[: max(self._limit - self.sent, 0)]
        if data:
            self.sent += len(data)
            self._emit(at, data)
        if self.sent >= self._limit:
            self._closed = True
            self._emit(at, Signal.CLOSE)
