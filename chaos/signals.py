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
