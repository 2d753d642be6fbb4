"""Fault schedules: drawn within the catalog and bounds, replayable from JSON, deterministic by
seed, and shrunk by the search to the smallest failing schedule (toy predicates, no I/O)."""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.catalog import Catalog, load_catalog
from chaos.errors import ConfigError, EnvironmentFailure, ImpactExceeded, UnknownFaultKind
from chaos.schedules import (
    CI_PROFILE,
    DEV_PROFILE,
    Exploration,
    InterruptLatch,
    SearchResult,
    Trial,
    explore,
    profile_name,
)
from chaos.strategies import (
    DEFAULT_BOUNDS,
    Bound,
    Schedule,
    ScheduledFault,
    fault_schedules,
)
from faults.network import latency
from faults.outage import outage
from faults.process import kill, stop
from faults.registry import EDGE_KINDS

CATALOG = """
version: 1
name: toy
services:
  web: {tier: 1, port: 8000, depends_on: [orders]}
  orders: {tier: 1, port: 8001, depends_on: [db]}
  db: {tier: 1, port: 5432}
edges:
  - web -> orders
  - orders -> db
journeys:
  buy:
    description: buy
    steps:
      - GET web /buy
failure_modes:
  1: [outage]
"""


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    path = Path(tmp_path_factory.mktemp("catalog")) / "chaos.yaml"
    path.write_text(CATALOG)
    return load_catalog(path)


def _toy(predicate):
    """A trial function that judges a schedule without running it; records what it saw."""
    seen: list[Schedule] = []

    def trial(schedule: Schedule) -> Trial:
        seen.append(schedule)
        failure = AssertionError("toy failure") if predicate(schedule) else None
        return Trial(schedule, failure, 0.0)

    return trial, seen


def _slow_for_a_second(schedule: Schedule) -> bool:
    return any(
        sf.fault.kind == "latency" and sf.fault.ms >= 800 and sf.duration >= 1.0
        for sf in schedule.faults
    )


# -- the strategy ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_schedules_stay_within_catalog_bounds_and_horizon(catalog: Catalog, data) -> None:
    schedule = data.draw(fault_schedules(catalog, max_faults=4, horizon="3s"))
    assert 1 <= len(schedule.faults) <= 4
    edges = {e.name for e in catalog.edges}
    services = set()
    for sf in schedule.faults:
        assert 0 <= sf.start <= sf.end <= 3.0
        assert sf.duration == 0 if sf.instant else sf.duration >= 0.5
        assert sf.fault.target in (edges if sf.fault.kind in EDGE_KINDS else catalog.services)
        for bound in DEFAULT_BOUNDS[sf.fault.kind]:
            value = getattr(sf.fault, bound.field)
            assert bound.lo <= value <= bound.hi and (value - bound.lo) % bound.step == 0
        if sf.fault.kind not in EDGE_KINDS:
            assert sf.fault.target not in services, "two process faults on one service"
            services.add(sf.fault.target)
    assert [sf.start for sf in schedule.faults] == sorted(sf.start for sf in schedule.faults)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_json_round_trip_rebuilds_the_same_schedule(catalog: Catalog, data) -> None:
    schedule = data.draw(fault_schedules(catalog, max_faults=3))
    assert Schedule.from_json(schedule.to_json()) == schedule
    assert Schedule.from_json(schedule.dumps()) == schedule


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_kinds_targets_and_bounds_restrict_the_draw(catalog: Catalog, data) -> None:
    strategy = fault_schedules(
        catalog,
        kinds=["latency"],
        targets=["orders->db"],
        bounds={"latency": (Bound("ms", 300, 300), Bound("jitter", 0, 0))},
    )
    schedule = data.draw(strategy)
    assert {(sf.fault.kind, sf.fault.target, sf.fault.ms) for sf in schedule.faults} == {
        ("latency", "orders -> db", 300)
    }


def test_bad_search_spaces_are_refused_with_the_reason(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no schedulable fault kind 'teleport'"):
        fault_schedules(catalog, kinds=["teleport"])
    with pytest.raises(ConfigError, match="min_duration"):
        fault_schedules(catalog, horizon="1s", min_duration="2s")
    with pytest.raises(ConfigError, match="horizon"):
        fault_schedules(catalog, horizon="soon")
    no_edges = tmp_path / "chaos.yaml"
    no_edges.write_text(CATALOG.split("edges:")[0] + CATALOG.split("- orders -> db")[1])
    with pytest.raises(ConfigError, match="none of the kinds outage has a target"):
        fault_schedules(load_catalog(no_edges), kinds=["outage"])
    with pytest.raises(ConfigError, match="lo <= hi"):
        Bound("ms", 10, 5)


def test_describe_and_events_of_a_hand_made_schedule() -> None:
    schedule = Schedule(
        (
            ScheduledFault(outage("web -> orders"), 0.0, 1.0),
            ScheduledFault(latency("orders -> db", 800), 1.0, 0.5),
            ScheduledFault(kill("db"), 1.0, 0.0),
        ),
        horizon=3.0,
    )
    assert schedule.describe() == (
        "3 faults within 3.00s:\n"
        "  at 0ms for 1.00s: outage web -> orders\n"
        "  at 1.00s for 500ms: latency orders -> db (latency_ms=800, jitter_ms=0)\n"
        "  at 1.00s instant: kill db"
    )
    # At 1.0s the outage is reverted before the next faults are applied; kill has no revert.
    assert schedule.events() == [
        (0.0, True, 0),
        (1.0, False, 0),
        (1.0, True, 1),
        (1.0, True, 2),
        (1.5, False, 1),
    ]
    assert schedule.span == 1.5


def test_replaying_bad_json_says_what_is_wrong() -> None:
    with pytest.raises(ConfigError, match="not a version 1 schedule"):
        Schedule.from_json({"faults": []})
    with pytest.raises(ConfigError, match="cannot be parsed"):
        Schedule.from_json("{nope")
    with pytest.raises(ConfigError, match="schedule fault #1: a fault needs kind"):
        Schedule.from_json({"version": 1, "horizon": 1, "faults": [{"kind": "outage"}]})
    with pytest.raises(UnknownFaultKind, match="valid kinds"):
        Schedule.from_json(
            {
                "version": 1,
                "horizon": 1,
                "faults": [{"kind": "nope", "target": "a", "start": 0, "duration": 1}],
            }
        )
    with pytest.raises(ConfigError, match="bad arguments"):
        Schedule.from_json(
            {
                "version": 1,
                "horizon": 1,
                "faults": [
                    {"kind": "stop", "target": "db", "args": {"ms": 1}, "start": 0, "duration": 1}
                ],
            }
        )


# -- the search: determinism and shrinking -------------------------------------------------------


def test_same_seed_gives_same_schedules_and_verdict(catalog: Catalog) -> None:
    strategy = fault_schedules(catalog, max_faults=3)

    def run(seed: int) -> tuple[list[str], str | None]:
        trial, seen = _toy(_slow_for_a_second)
        found = explore(strategy, trial, seed=seed, profile=DEV_PROFILE, max_examples=60)
        minimal = found.minimal.schedule.dumps() if found.minimal else None
        return [s.dumps() for s in seen], minimal

    first, again, other = run(20261123), run(20261123), run(7)
    assert first == again
    assert first[1] is not None
    assert other[0] != first[0], "a different seed explores differently"


def test_search_shrinks_to_a_single_short_simple_fault(catalog: Catalog) -> None:
    trial, seen = _toy(_slow_for_a_second)
    strategy = fault_schedules(catalog, max_faults=3, horizon="6s")
    found = explore(strategy, trial, seed=1, profile=DEV_PROFILE, max_examples=200)
    assert found.minimal is not None and found.minimal.failure is not None
    (only,) = found.minimal.schedule.faults
    assert (only.fault, only.start, only.duration) == (latency("web -> orders", 800), 0.0, 1.0)
    first_failure = next(s for s in seen if _slow_for_a_second(s))
    assert first_failure != found.minimal.schedule, "the first failure found was shrunk"
    assert len(seen) == len({s.dumps() for s in seen}), "each distinct schedule runs once"


def test_search_shrinks_an_overlap_to_two_minimal_faults(catalog: Catalog) -> None:
    def overlap(schedule: Schedule) -> bool:
        spans = [(sf.start, sf.end) for sf in schedule.faults if not sf.instant]
        return any(a[0] < b[1] and b[0] < a[1] for a, b in itertools.combinations(spans, 2))

    trial, _ = _toy(overlap)
    strategy = fault_schedules(catalog, kinds=["outage", "latency"], max_faults=3)
    found = explore(strategy, trial, seed=3, profile=DEV_PROFILE, max_examples=300)
    assert found.minimal is not None
    faults = found.minimal.schedule.faults
    assert len(faults) == 2
    assert all((sf.start, sf.duration) == (0.0, 0.5) for sf in faults)
    assert all(sf.fault.kind == "outage" for sf in faults)  # the simplest kind, on both edges


def test_a_search_where_the_system_holds_has_no_minimal(catalog: Catalog) -> None:
    trial, seen = _toy(lambda schedule: False)
    found = explore(fault_schedules(catalog), trial, seed=5, profile=CI_PROFILE, max_examples=7)
    assert found.minimal is None and len(seen) == 7 and not found.budget_exhausted


def test_budget_stops_shrinking_at_the_best_found_so_far(catalog: Catalog) -> None:
    ticks = itertools.count()
    trial, seen = _toy(lambda schedule: True)  # everything fails: shrinking would go on
    found = explore(
        fault_schedules(catalog, max_faults=3),
        trial,
        seed=11,
        profile=DEV_PROFILE,
        budget=4,
        clock=lambda: float(next(ticks)),  # one "second" per look at the clock
    )
    assert found.budget_exhausted
    assert 1 <= len(seen) <= 4
    assert found.minimal is not None and found.minimal.schedule in seen


def test_an_error_that_is_no_verdict_aborts_the_search_at_once(catalog: Catalog) -> None:
    calls = []

    def broken(schedule: Schedule) -> Trial:
        calls.append(schedule)
        raise EnvironmentFailure("service back did not become healthy")

    with pytest.raises(EnvironmentFailure, match="did not become healthy"):
        explore(fault_schedules(catalog), broken, seed=1, profile=DEV_PROFILE)
    assert len(calls) == 1


def test_profiles_are_deterministic_and_ci_is_chosen_by_the_ci_variable() -> None:
    from hypothesis import settings as hsettings

    assert profile_name({"CI": "true"}) == CI_PROFILE
    assert profile_name({}) == DEV_PROFILE
    for name in (DEV_PROFILE, CI_PROFILE):
        profile = hsettings.get_profile(name)
        assert profile.database is None and profile.deadline is None
    assert (
        hsettings.get_profile(CI_PROFILE).max_examples
        < hsettings.get_profile(DEV_PROFILE).max_examples
    )


def test_result_message_names_the_minimal_schedule_and_replay(catalog: Catalog) -> None:
    schedule = Schedule((ScheduledFault(stop("db"), 0.0, 0.5),), 3.0)
    failure = ImpactExceeded("buy broke")
    exploration = Exploration(
        trials=(Trial(schedule, failure, 1.0),),
        minimal=Trial(schedule, failure, 1.0),
        seed=42,
        profile=CI_PROFILE,
        budget=180.0,
        budget_exhausted=False,
        seconds=1.0,
    )
    result = SearchResult(exploration, "t.py::test_x", "pytest t.py::test_x --chaos-seed=42")
    message = result.message()
    assert "at 0ms for 500ms: stop db" in message
    assert "pytest t.py::test_x --chaos-seed=42" in message
    assert "ImpactExceeded: buy broke" in message
    assert Schedule.from_json(result.to_json()["minimal_schedule"]) == schedule
    with pytest.raises(ImpactExceeded, match="replay the search"):
        result.raise_for_failure()


def test_an_interrupt_lost_on_the_way_is_raised_again_by_the_latch() -> None:
    before = signal.getsignal(signal.SIGINT)
    with InterruptLatch() as latch:
        latch.check()  # nothing received: no-op
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # bounded: the signal interrupts it at once
        except KeyboardInterrupt:
            pass  # swallowed, as CPython does when it lands inside a finalizer
        with pytest.raises(KeyboardInterrupt):
            latch.check()
    assert signal.getsignal(signal.SIGINT) is before
