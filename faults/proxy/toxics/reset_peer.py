"""reset_peer: `timeout` ms after data arrives, abort the connection with a TCP RST."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faults.proxy.core import Signal, Stage, Timed
from faults.proxy.toxics.base import ToxicAttributes, attribute


@dataclass(frozen=True)
class ResetPeer(ToxicAttributes):
    type_name = "reset_peer"
    timeout: int = attribute("ms")

    def stage(self, rng: random.Random) -> Stage:
        return ResetPeerStage(self.timeout / 1000)


class ResetPeerStage(Stage):
    """Data from the first chunk on is held (a reset discards it); removal hands it on."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout = timeout_s
        self._held_items: list[Timed] = []
        self._fire_at: float | None = None

    def on_data(self, data: bytes, at: float) -> None:
        if self._fire_at is None:
            self._fire_at = at + self._timeout
        self._held_items.append(Timed(at, data))

    def on_end(self, signal: Signal, at: float) -> None:
        if self._fire_at is None:
            self._emit(at, signal)
        else:
            self._held_items.append(Timed(at, signal))

    def deadline(self) -> float | None:
        own = super().deadline()
        return own if own is not None else self._fire_at

    def pull(self, now: float) -> list[Timed]:
        if self._fire_at is not None and now >= self._fire_at:
            self._held_items.clear()
            self._emit(self._fire_at, Signal.RESET)
            self._fire_at = None
        return super().pull(now)

    def drain(self, now: float) -> list[Timed]:
        out = super().drain(now) + [Timed(min(t.at, now), t.item) for t in self._held_items]
        self._held_items.clear()
        self._fire_at = None
        return out

    @property
    def held(self) -> int:
        return super().held + sum(
            len(t.item) for t in self._held_items if isinstance(t.item, bytes)
        )
