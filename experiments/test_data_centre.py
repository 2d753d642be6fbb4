"""Data-centre failure: every service crashes at once; the shop must come back by itself.

All processes are SIGKILLed together (restart policies apply, as after a power cut with
supervisors coming back). The experiment checks that services became ready in an order the
catalog allows — no service before a hard dependency (depends_on), so the restore order's
constraints hold — that every tier-1 journey recovers within the RTO, and that the books are
still reconciled. Each service's time to recover (crash → ready) and each journey's TTR are
recorded as the test's user_properties (reports, JUnit XML) and printed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from chaos.catalog import Catalog
from chaos.environments.restart_policy import EventKind, LifecycleEvent
from chaos.experiment import Experiment
from examples.shop.invariants import INVARIANTS
from faults.process import kill

# Ready events are seen by the supervisor's monitor, one health check after another; a service
# may be seen ready up to one pass (a health timeout per service) after it was.
READY_RESOLUTION = 0.5
RESTORE_WAIT = 15.0  # seconds each service may still take to be ready once journeys recovered


def first_ready(events: list[LifecycleEvent], since: float) -> dict[str, float]:
    """When each service was first seen ready at or after `since` (monotonic seconds)."""
    ready: dict[str, float] = {}
    for event in events:
        if event.kind is EventKind.READY and event.at >= since:
            ready.setdefault(event.service, event.at)
    return ready


def order_violations(catalog: Catalog, ready: Mapping[str, float]) -> list[str]:
    """Services seen ready before one of their hard dependencies (beyond the resolution)."""
    problems = []
    for name in catalog.restore_sequence():
        for dependency in catalog.service(name).depends_on:
            if ready[dependency] > ready[name] + READY_RESOLUTION:
                problems.append(
                    f"{name} was ready {ready[dependency] - ready[name]:.2f}s before its "
                    f"dependency {dependency}"
                )
    return problems


@pytest.mark.chaos(rto="30s")
def test_data_centre_failure(experiment: Experiment, request: pytest.FixtureRequest) -> None:
    env = experiment.env
    record = request.node.user_properties.append
    if env.kind != "local":
        pytest.skip("reads the local supervisor's lifecycle events; compose has its own check")
    catalog = env.catalog
    order = catalog.restore_sequence()
    crashed_at = time.monotonic()
    with experiment.inject(*(kill(name) for name in order)):
        experiment.observe("2s")
    experiment.recover()

    for name in order:  # journeys may recover before a soft dependency is back: wait for all
        env.lifecycle.wait_for(name, EventKind.READY, since=crashed_at, timeout=RESTORE_WAIT)
    ready = first_ready(env.lifecycle.events(), crashed_at)
    seen = sorted(order, key=ready.__getitem__)
    for name in order:
        record((f"ttr_service_{name}", round(ready[name] - crashed_at, 3)))
    for name, journey in catalog.journeys.items():
        if journey.tier == 1:
            record((f"ttr_journey_{name}", experiment.impact(name).ttr))
    print(f"ready order {seen}; restore order {order}")
    assert not order_violations(catalog, ready), order_violations(catalog, ready)
    experiment.verify(*INVARIANTS)
