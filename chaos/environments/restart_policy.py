"""Restart policy and lifecycle events, pure so they are testable without processes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from chaos.environments.local_spec import RestartPolicy

# --- restart policy: pure, so it is testable without processes -----------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential restart delay (initial, doubling, capped); forgotten after `stable` s of running."""

    initial: float = 0.1
    maximum: float = 2.0
    stable: float = 10.0

    def delay(self, failures: int) -> float:
        """Delay before the restart that follows `failures` earlier consecutive failures."""
        return min(self.maximum, self.initial * 2.0 ** min(max(failures, 0), 64))


@dataclass(frozen=True)
class RestartDecision:
    """What the supervisor does after an exit: restart or not, after how long, failure count."""

    restart: bool
    delay: float
    failures: int


def policy_restarts(policy: RestartPolicy, returncode: int) -> bool:
    """Whether `policy` restarts a process that exited on its own with `returncode` (<0: signal)."""
    if policy is RestartPolicy.ALWAYS:
        return True
    if policy is RestartPolicy.ON_FAILURE:
        return returncode != 0
    return False


def decide_restart(
    policy: RestartPolicy,
    returncode: int,
    *,
    requested: bool,
    ran_for: float,
    failures: int,
    backoff: Backoff = Backoff(),
) -> RestartDecision:
    """Apply the restart policy to one exit; stops we asked for are never restarted."""
    if requested:
        return RestartDecision(restart=False, delay=0.0, failures=0)
    if ran_for >= backoff.stable:
        failures = 0
    if not policy_restarts(policy, returncode):
        return RestartDecision(restart=False, delay=0.0, failures=failures)
    return RestartDecision(restart=True, delay=backoff.delay(failures), failures=failures + 1)


# --- events -----------------------------------------------------------------------------------


class EventKind(StrEnum):
    """What happened to a supervised service."""

    STARTED = "started"
    EXITED = "exited"
    RESTARTED = "restarted"
    READY = "ready"
    PAUSED = "paused"
    RESUMED = "resumed"
    STOPPED = "stopped"
    FAILED = "failed"  # the supervisor itself could not (re)start it; `detail` says why


@dataclass(frozen=True)
class LifecycleEvent:
    """One lifecycle event; `at` is time.monotonic() (durations), `wall` is time.time() (reports)."""

    at: float
    wall: float
    service: str
    kind: EventKind
    pid: int | None = None
    code: int | None = None  # exit status; negative = killed by that signal
    requested: bool = False  # an exit we caused on purpose (stop, restart)
    detail: str = ""


def recovery_times(events: Iterable[LifecycleEvent], service: str) -> list[float]:
    """Seconds from each unrequested exit of `service` to its next `ready` (self-healing time)."""
    times: list[float] = []
    down_since: float | None = None
    for event in events:
        if event.service != service:
            continue
        if event.kind is EventKind.EXITED and not event.requested and down_since is None:
            down_since = event.at
        elif event.kind is EventKind.READY and down_since is not None:
            times.append(event.at - down_since)
            down_since = None
    return times
