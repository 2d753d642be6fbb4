"""Data-centre failure: every service crashes at once; the shop must come back by itself.

All processes are SIGKILLed together (restart policies apply, as after a power cut with
supervisors coming back): the local supervisor's processes, or the compose containers' main
processes (Docker's restart policy applies; `docker kill` would count as a manual stop).
The experiment checks that services became ready in an order the catalog allows — no service
before a hard dependency (depends_on), so the restore order's constraints hold — that every
tier-1 journey recovers within the RTO, and that the books are still reconciled. Each service's
time to recover (crash → ready) and each journey's TTR are recorded as the test's
user_properties (reports, JUnit XML) and printed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from chaos.catalog import Catalog
from chaos.environments.base import Environment
from chaos.environments.restart_policy import EventKind, LifecycleEvent
from chaos.errors import EnvironmentFailure
from chaos.experiment import Experiment
from examples.shop.invariants import INVARIANTS
from faults.process import kill

# Ready events come from health checks, so a service may be seen ready a little after it was:
# local, up to one pass of the supervisor's monitor (a health timeout per service); compose, up
# to one Docker healthcheck interval (500ms in compose.yaml) plus the check's own run time.
READY_RESOLUTION = {"local": 0.5, "compose": 1.5}
RESTORE_WAIT = 15.0  # seconds every service may still take to be ready once journeys recovered
POLL = 0.25


def first_ready(events: list[LifecycleEvent], since: float) -> dict[str, float]:
    """When each service was first seen ready at or after `since` (monotonic seconds)."""
    ready: dict[str, float] = {}
    for event in events:
        if event.kind is EventKind.READY and event.at >= since:
            ready.setdefault(event.service, event.at)
    return ready


def wait_all_ready(
    env: Environment, since: float, timeout: float = RESTORE_WAIT
) -> dict[str, float]:
    """First ready time (after `since`) of every catalog service, waiting (bounded) for the last.

    Journeys may recover before a soft dependency is back, so this waits for all of them. Both
    environments keep every lifecycle event of the run (compose subscribes to Docker's event
    stream at start), so reading them afterwards misses nothing.
    """
    services = list(env.catalog.services)
    deadline = time.monotonic() + timeout
    while True:
        ready = first_ready(env.events, since)
        missing = [name for name in services if name not in ready]
        if not missing:
            return ready
        if time.monotonic() >= deadline:
            raise EnvironmentFailure(
                f"{', '.join(missing)} not ready {timeout:.0f}s after the shop recovered "
                f"(ready: {', '.join(ready) or 'none'}); see the services' logs"
            )
        time.sleep(POLL)


def order_violations(catalog: Catalog, ready: Mapping[str, float], resolution: float) -> list[str]:
    """Services seen ready before one of their hard dependencies (beyond the resolution)."""
    problems = []
    for name in catalog.restore_sequence():
        for dependency in catalog.service(name).depends_on:
            if ready[dependency] > ready[name] + resolution:
                problems.append(
                    f"{name} was ready {ready[dependency] - ready[name]:.2f}s before its "
                    f"dependency {dependency}"
                )
    return problems


@pytest.mark.chaos(rto="30s")
def test_data_centre_failure(experiment: Experiment, request: pytest.FixtureRequest) -> None:
    env = experiment.env
    record = request.node.user_properties.append
    catalog = env.catalog
    order = catalog.restore_sequence()
    crashed_at = time.monotonic()
    with experiment.inject(*(kill(name) for name in order)):
        experiment.observe("2s")
    experiment.recover()
    ready = wait_all_ready(env, crashed_at)
    seen = sorted(order, key=ready.__getitem__)
    for name in order:
        record((f"ttr_service_{name}", round(ready[name] - crashed_at, 3)))
    for name, journey in catalog.journeys.items():
        if journey.tier == 1:
            record((f"ttr_journey_{name}", experiment.impact(name).ttr))
    times = ", ".join(f"{name} {ready[name] - crashed_at:.2f}s" for name in seen)
    print(f"ready order (crash → ready) {times}; restore order {order}")
    problems = order_violations(catalog, ready, READY_RESOLUTION[env.kind])
    assert not problems, problems
    experiment.verify(*INVARIANTS)
