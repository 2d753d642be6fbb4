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

import threading
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


class ReadyWatch:
    """Each service's first ready event after `since`, read every POLL seconds while it runs.

    Docker keeps only its last 256 events and the compose healthchecks' execs fill that within
    seconds, so compose events must be read while the experiment runs, not after it. (The local
    supervisor keeps every event; reading it as it goes changes nothing there.)
    """

    def __init__(self, env: Environment, since: float) -> None:
        self.env = env
        self.since = since
        self.error: Exception | None = None
        self._ready: dict[str, float] = {}
        self._lock = threading.Lock()  # the watch thread and wait_all both merge reads
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ready-watch", daemon=True)

    def __enter__(self) -> ReadyWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            self.read()

    def read(self) -> dict[str, float]:
        """Merge what the environment's event log holds now; the first ready times so far."""
        try:
            seen = first_ready(self.env.events, self.since)
        except Exception as err:  # a failed read: the next poll retries; shown if all fail
            self.error = err
            seen = {}
        with self._lock:
            for name, at in seen.items():
                self._ready[name] = min(at, self._ready.get(name, at))
            return dict(self._ready)

    def wait_all(self, timeout: float = RESTORE_WAIT) -> dict[str, float]:
        """First ready time of every catalog service, waiting (bounded) for the last one.

        Journeys may recover before a soft dependency is back, so this waits for all of them.
        """
        services = list(self.env.catalog.services)
        deadline = time.monotonic() + timeout
        while True:
            ready = self.read()
            missing = [name for name in services if name not in ready]
            if not missing:
                return ready
            if time.monotonic() >= deadline:
                raise EnvironmentFailure(
                    f"{', '.join(missing)} not ready {timeout:.0f}s after the shop recovered "
                    f"(ready: {', '.join(ready) or 'none'}; last read error: {self.error}); "
                    "see the services' logs"
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
    with ReadyWatch(env, crashed_at) as watch:
        with experiment.inject(*(kill(name) for name in order)):
            experiment.observe("2s")
        experiment.recover()
        ready = watch.wait_all()
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
