"""Process faults (kill, stop, pause, restart) acting on services through the environment lifecycle."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from chaos.errors import FaultError
from chaos.procfs import proc_stat, signal_group
from faults.base import Injection, describe

if TYPE_CHECKING:
    from chaos.environments.base import Environment


def _nothing() -> None:
    """Revert of a fault the system has to heal from by itself (a crash, a restart)."""


@dataclass(frozen=True)
class ProcessFault:
    """One lifecycle action on one service; `undo` names the lifecycle call that reverts it live."""

    kind: ClassVar[str]
    action: ClassVar[str]  # ServiceLifecycle method that injects the fault
    undo: ClassVar[str | None]  # ServiceLifecycle method that reverts it; None: nothing to revert
    instant: ClassVar[bool] = False  # an event (crash, restart): the fault ends once applied
    target: str

    def params(self) -> dict[str, Any]:
        return {}

    def plan(self, env: Environment) -> Injection:
        """Resolve the service (UnknownTarget) and require it running, before anything happens."""
        env.catalog.service(self.target)
        lifecycle = env.lifecycle
        if not lifecycle.is_running(self.target):
            raise FaultError(
                f"cannot {self.kind} service {self.target!r}: it is not running; "
                "reconcile the environment (or start the service) before injecting"
            )
        recipe = lifecycle.revert_recipe(self.kind, self.target)
        undo = getattr(lifecycle, self.undo) if self.undo else None
        return Injection(
            description=describe(self),
            recipe=recipe,
            apply=partial(getattr(lifecycle, self.action), self.target),
            revert=partial(undo, self.target) if undo else _nothing,
            instant=self.instant,
        )


@dataclass(frozen=True)
class Kill(ProcessFault):
    """SIGKILL the main process: a crash the restart policy must heal (nothing to revert)."""

    kind: ClassVar[str] = "kill"
    action: ClassVar[str] = "crash"
    undo: ClassVar[str | None] = None
    instant: ClassVar[bool] = True


@dataclass(frozen=True)
class Stop(ProcessFault):
    """Orderly stop; the policy does not restart it; revert starts it again."""

    kind: ClassVar[str] = "stop"
    action: ClassVar[str] = "stop"
    undo: ClassVar[str | None] = "start"


@dataclass(frozen=True)
class Pause(ProcessFault):
    """Freeze the process group (SIGSTOP): connections hang instead of failing; revert resumes."""

    kind: ClassVar[str] = "pause"
    action: ClassVar[str] = "pause"
    undo: ClassVar[str | None] = "resume"


@dataclass(frozen=True)
class Restart(ProcessFault):
    """Orderly stop then start (a deploy, a manual restart); nothing to revert."""

    kind: ClassVar[str] = "restart"
    action: ClassVar[str] = "restart"
    undo: ClassVar[str | None] = None
    instant: ClassVar[bool] = True


def kill(service: str) -> Kill:
    return Kill(service)


def stop(service: str) -> Stop:
    return Stop(service)


def pause(service: str) -> Pause:
    return Pause(service)


def restart(service: str) -> Restart:
    return Restart(service)


KINDS: tuple[type, ...] = (Kill, Stop, Pause, Restart)


# --- revert recipes a fresh process can run --------------------------------------------------


def _same_process(pid: int, start_ticks: int | None) -> bool:
    """Whether `pid` still is the recorded process (same start time), zombies included."""
    stat = proc_stat(pid)
    return stat is not None and start_ticks is not None and stat.start_ticks == start_ticks


def _signal_number(name: str) -> signal.Signals:
    try:
        return signal.Signals[name]
    except KeyError:
        raise FaultError(
            f"recipe names unknown signal {name!r}; expected a name such as SIGCONT or SIGKILL"
        ) from None


def signal_recipe(
    *, pid: int, start_ticks: int | None, signal: str, group: bool = False, service: str = ""
) -> None:
    """Send `signal` to the recorded process (or its group); a gone or reused pid is success."""
    signum = _signal_number(signal)
    stat = proc_stat(pid)
    if stat is None or not _same_process(pid, start_ticks):
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(stat.pgrp, signum)
        else:
            os.kill(pid, signum)


def _orphans(pgid: int, start_ticks: int) -> list[int]:
    """Members of group `pgid` (and session `pgid`) started no earlier than its dead leader."""
    members: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat and stat.pgrp == pgid == stat.session and stat.start_ticks >= start_ticks:
                members.append(stat.pid)
    return members


def kill_group_recipe(*, pid: int, pgid: int, start_ticks: int | None, service: str = "") -> None:
    """Remove a spawned service: SIGCONT then SIGKILL its whole group; idempotent.

    With the leader still there (same start time), the group is signalled at once. With the
    leader gone, a process holding its pid is someone else (a group id is never reused while the
    group lives), so only the leader's orphaned group members, if any, are killed.
    """
    if _same_process(pid, start_ticks):
        signal_group(pgid, signal.SIGCONT)
        signal_group(pgid, signal.SIGKILL)
        return
    if start_ticks is None or proc_stat(pgid) is not None:
        return
    for member in _orphans(pgid, start_ticks):
        for signum in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(member, signum)
            except ProcessLookupError:
                break


RECIPE_ACTIONS: dict[str, Callable[..., None]] = {
    "process.signal": signal_recipe,
    "process.kill_group": kill_group_recipe,
}
