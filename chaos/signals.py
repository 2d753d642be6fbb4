"""SIGTERM becomes KeyboardInterrupt, so a terminated run unwinds and reverts like Ctrl-C does."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives; pytest treats it as an interruption."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"received signal {signal.Signals(signum).name}: stopping in order")


class OrderlyStop:
    """Install the SIGTERM handler for a run's lifetime, then put the old one back."""

    def __init__(self) -> None:
        self._previous: Callable[[int, FrameType | None], Any] | int | None = None
        self._installed = False

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread
        self._previous = signal.signal(signal.SIGTERM, _raise_terminated)
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)  # type: ignore[arg-type]
            self._installed = False


def drop_lineless_frames(error: BaseException) -> None:
    """Unlink traceback entries without a line number (from `error` and its chained errors).

    A signal can land on a CPython 3.11 instruction that has no line; pytest then fails while
    rendering the KeyboardInterrupt (`tb_lineno - 1` on None) and exits 1 instead of 2, hiding
    what was interrupted. Those entries carry no source line to show, so dropping them is lossless.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    for _ in range(100):  # chains are short; bounded against cycles
        if current is None or id(current) in seen:
            return
        seen.add(id(current))
        head = current.__traceback__
        while head is not None and head.tb_lineno is None:
            head = head.tb_next
        if head is not current.__traceback__:
            current.__traceback__ = head
        node = head
        while node is not None:
            while node.tb_next is not None and node.tb_next.tb_lineno is None:
                node.tb_next = node.tb_next.tb_next
            node = node.tb_next
        current = current.__cause__ or current.__context__
