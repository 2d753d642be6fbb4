"""Sans-IO toxic pipeline: chunks and a clock in, timed deliveries / close / reset out.

One `Link` is one direction of one proxied connection. It owns a chain of `Stage`s, the
per-connection state of each toxic. Nothing here touches a socket or reads a clock: callers pass
`now`, so tests drive it with a fake clock and check exact outputs. Rules kept here, in one place:
toxicity is drawn once per connection per toxic (`Link._stage_for`), order is preserved, and a
stage that is removed or replaced hands everything it holds to the next stage ("never drop data on
the floor").
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol


class Stream(enum.Enum):
    """Direction of a toxic: upstream = client to server, downstream = server to client."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


class Signal(enum.Enum):
    """End-of-stream events that travel through the chain like data."""

    EOF = "eof"  # the source finished: half-close the destination after pending data
    CLOSE = "close"  # a toxic ends the connection (limit_data, timeout, slow_close)
    RESET = "reset"  # a toxic aborts the connection with a TCP RST (reset_peer)


Item = bytes | Signal
FOREVER = float("inf")  # "due when the toxic is removed" (bandwidth with rate 0)


@dataclass(frozen=True)
class Timed:
    """An item and the time (seconds, caller's clock) it leaves a stage."""

    at: float
    item: Item


class Stage:
    """Per-connection state of one toxic on one direction. The base class passes items through.

    Subclasses override `on_data` / `on_end` (and `deadline` / `pull` for timers). Items leave in
    the order they are emitted; `_emit` never lets a later item overtake an earlier one.
    """

    def __init__(self) -> None:
        self._out: deque[Timed] = deque()
        self._last = float("-inf")

    def push(self, item: Item, at: float) -> None:
        if isinstance(item, bytes):
            self.on_data(item, at)
        else:
            self.on_end(item, at)

    def on_data(self, data: bytes, at: float) -> None:
        self._emit(at, data)

    def on_end(self, signal: Signal, at: float) -> None:
        self._emit(at, signal)

    def _emit(self, at: float, item: Item) -> None:
        at = max(at, self._last)
        self._last = at
        self._out.append(Timed(at, item))

    def start(self, now: float) -> None:
        """The stage joined the chain at `now` (connection opened or toxic added)."""

    def deadline(self) -> float | None:
        """When `pull` will next have something to give, or None."""
        if not self._out or self._out[0].at == FOREVER:
            return None
        return self._out[0].at

    def pull(self, now: float) -> list[Timed]:
        out: list[Timed] = []
        while self._out and self._out[0].at <= now:
            out.append(self._out.popleft())
        return out

    def drain(self, now: float) -> list[Timed]:
        """The stage is being removed: hand over everything held, due now, in order."""
        out = [Timed(min(t.at, now), t.item) for t in self._out]
        self._out.clear()
        return out

    def carry(self, old: Stage) -> None:
        """Take over state from the stage this one replaces (toxic updated). Default: none."""

    @property
    def held(self) -> int:
        """Bytes held back (for back-pressure)."""
        return sum(len(t.item) for t in self._out if isinstance(t.item, bytes))


class Toxic(Protocol):
    """A toxic's attributes (a frozen dataclass) and the factory of its per-connection stage."""

    type_name: ClassVar[str]

    def stage(self, rng: random.Random) -> Stage: ...

    def attributes(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ToxicSpec:
    """A toxic as the admin API knows it: name, stream, toxicity and typed attributes."""

    name: str
    stream: Stream
    toxicity: float
    toxic: Toxic

    @property
    def type(self) -> str:
        return self.toxic.type_name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream.value,
            "toxicity": self.toxicity,
            "attributes": self.toxic.attributes(),
        }


class Link:
    """One direction of one connection: a chain of stages between source and destination."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._chain: list[tuple[ToxicSpec, Stage]] = []
        self._output: list[Item] = []
        self.finished = False  # CLOSE or RESET has been emitted; nothing more goes out

    # -- chain management ------------------------------------------------------------------
    def _stage_for(self, spec: ToxicSpec, now: float) -> Stage:
        """The one place toxicity is applied: drawn once, when the stage joins the chain."""
        stage = spec.toxic.stage(self._rng) if self._rng.random() < spec.toxicity else Stage()
        stage.start(now)
        return stage

    def install(self, specs: Sequence[ToxicSpec], now: float) -> None:
        """Make the chain match `specs` (in order): remove, replace and append stages."""
        wanted = {s.name: s for s in specs}
        for index in range(len(self._chain) - 1, -1, -1):
            spec, _ = self._chain[index]
            if spec.name not in wanted:
                self._remove(index, now)
        for index, (spec, stage) in enumerate(self._chain):
            new = wanted[spec.name]
            if new != spec:
                fresh = self._stage_for(new, now)
                fresh.carry(stage)
                self._forward(index, stage.drain(now))
                self._chain[index] = (new, fresh)
        present = {spec.name for spec, _ in self._chain}
        for spec in specs:
            if spec.name not in present:
                self._chain.append((spec, self._stage_for(spec, now)))
        self._run(now)

    def _remove(self, index: int, now: float) -> None:
        _, stage = self._chain[index]
        items = stage.drain(now)
        del self._chain[index]
        self._forward(index, items)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec, _ in self._chain]

    # -- data flow -------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> None:
        """Bytes read from the source at `now`."""
        if data and not self.finished:
            self._forward(0, [Timed(now, data)])
            self._run(now)

    def feed_end(self, now: float, signal: Signal = Signal.EOF) -> None:
        """The source closed (EOF) or failed."""
        if not self.finished:
            self._forward(0, [Timed(now, signal)])
            self._run(now)

    def _forward(self, index: int, items: Iterable[Timed]) -> None:
        """Give items to stage `index`, or to the output when past the last stage."""
        if index < len(self._chain):
            stage = self._chain[index][1]
            for t in items:
                stage.push(t.item, t.at)
            return
        for t in items:
            if self.finished:
                return
            self._output.append(t.item)
            if t.item in (Signal.CLOSE, Signal.RESET):
                self.finished = True

    def _run(self, now: float) -> None:
        for index, (_, stage) in enumerate(self._chain):
            due = stage.pull(now)
            if due:
                self._forward(index + 1, due)

    def poll(self, now: float) -> list[Item]:
        """Everything due by `now`, in order: bytes to write, then possibly a Signal."""
        self._run(now)
        out, self._output = self._output, []
        return out

    def deadline(self) -> float | None:
        times = [t for _, s in self._chain if (t := s.deadline()) is not None]
        return min(times) if times else None

    @property
    def held(self) -> int:
        """Bytes inside the chain (not yet due)."""
        return sum(stage.held for _, stage in self._chain)

    @property
    def idle(self) -> bool:
        """No stage and nothing pending: the socket layer may use its fast path."""
        return not self._chain and not self._output
