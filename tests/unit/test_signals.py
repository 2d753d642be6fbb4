"""SIGTERM unwinds the main thread like Ctrl-C, so `finally` blocks revert faults."""

from __future__ import annotations

import os
import signal
import time

import pytest

from chaos.signals import OrderlyStop, Terminated


def test_sigterm_raises_terminated_and_finally_runs() -> None:
    stop = OrderlyStop()
    stop.install()
    reverted = []
    try:
        with pytest.raises(Terminated):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # interrupted by the handler long before this ends
            finally:
                reverted.append(True)
    finally:
        stop.uninstall()
    assert reverted == [True]
    assert issubclass(Terminated, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is not None
