"""Waiting on our own child processes without reaping them: until one exits, or is (un)frozen.

Exits are seen with waitid(WNOWAIT), which leaves the child a zombie until the supervisor reaps
it, so its pid (and the process group it leads) cannot be reused while we may still signal it;
SIGSTOP and SIGCONT are delivered asynchronously, so pausing waits for /proc to show the change.
Kept apart from chaos.environments.supervisor so its restart logic reads without these polls.
"""

from __future__ import annotations

import os
import time

from chaos.procfs import proc_stat

EXIT_WAIT = 2.0  # bound on waiting for a SIGKILLed process to die


def child_exited(pid: int) -> bool:
    """Whether our child `pid` has exited, without reaping it (so its pid cannot be reused)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def wait_stopped(pid: int, stopped: bool, timeout: float = EXIT_WAIT) -> bool:
    """Wait until `pid` is (or is no longer) frozen: signals are delivered asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = proc_stat(pid)
        if stat is None or (stat.state in ("T", "t")) is stopped:
            return True
        time.sleep(0.005)
    return False


def wait_child_exit(pid: int, timeout: float) -> bool:
    """Wait at most `timeout` seconds for our child to exit; True when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child_exited(pid):
            return True
        time.sleep(0.01)
    return child_exited(pid)
