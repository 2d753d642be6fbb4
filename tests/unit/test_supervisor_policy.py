"""The supervisor's restart decision and backoff, as pure functions (no processes)."""

from __future__ import annotations

import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.environments.local_spec import RestartPolicy
from chaos.environments.restart_policy import (
    Backoff,
    EventKind,
    LifecycleEvent,
    decide_restart,
    policy_restarts,
    recovery_times,
)

KILLED = -signal.SIGKILL


@pytest.mark.parametrize(
    ("policy", "code", "expected"),
    [
        (RestartPolicy.ALWAYS, 0, True),
        (RestartPolicy.ALWAYS, 1, True),
        (RestartPolicy.ALWAYS, KILLED, True),
        (RestartPolicy.ON_FAILURE, 0, False),
        (RestartPolicy.ON_FAILURE, 3, True),
        (RestartPolicy.ON_FAILURE, KILLED, True),
        (RestartPolicy.NO, 1, False),
        (RestartPolicy.NO, KILLED, False),
    ],
)
def test_policy_table(policy: RestartPolicy, code: int, expected: bool) -> None:
    assert policy_restarts(policy, code) is expected


@given(st.sampled_from(list(RestartPolicy)), st.integers(-64, 255), st.floats(0, 1e6))
def test_requested_stops_are_never_restarted(policy: RestartPolicy, code: int, ran: float) -> None:
    decision = decide_restart(policy, code, requested=True, ran_for=ran, failures=5)
    assert not decision.restart
    assert decision.failures == 0


def test_backoff_doubles_from_100ms_to_a_2s_cap() -> None:
    delays = []
    failures = 0
    for _ in range(8):
        decision = decide_restart(
            RestartPolicy.ON_FAILURE, KILLED, requested=False, ran_for=0.5, failures=failures
        )
        assert decision.restart
        delays.append(decision.delay)
        failures = decision.failures
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])
    assert failures == 8


def test_backoff_is_forgotten_after_ten_stable_seconds() -> None:
    unstable = decide_restart(RestartPolicy.ALWAYS, 0, requested=False, ran_for=9.9, failures=6)
    stable = decide_restart(RestartPolicy.ALWAYS, 0, requested=False, ran_for=10.0, failures=6)
    assert unstable.delay == pytest.approx(2.0)
    assert (stable.delay, stable.failures) == (pytest.approx(0.1), 1)


def test_no_restart_keeps_the_failure_count_for_reports() -> None:
    decision = decide_restart(RestartPolicy.ON_FAILURE, 0, requested=False, ran_for=1, failures=2)
    assert (decision.restart, decision.failures) == (False, 2)


@given(st.integers(0, 10_000))
def test_backoff_delay_is_bounded(failures: int) -> None:
    backoff = Backoff(initial=0.05, maximum=1.5)
    assert 0.05 <= backoff.delay(failures) <= 1.5


def _event(at: float, kind: EventKind, *, service: str = "a", requested: bool = False):
    return LifecycleEvent(at, at, service, kind, requested=requested)


def test_recovery_times_measure_unrequested_exit_to_ready() -> None:
    events = [
        _event(0.0, EventKind.STARTED),
        _event(0.5, EventKind.READY),
        _event(2.0, EventKind.EXITED),
        _event(2.1, EventKind.EXITED, service="b"),
        _event(2.2, EventKind.RESTARTED),
        _event(2.75, EventKind.READY),
        _event(5.0, EventKind.EXITED, requested=True),
        _event(5.1, EventKind.STOPPED),
        _event(6.0, EventKind.STARTED),
        _event(6.5, EventKind.READY),
    ]
    assert recovery_times(events, "a") == pytest.approx([0.75])
    assert recovery_times(events, "b") == []
