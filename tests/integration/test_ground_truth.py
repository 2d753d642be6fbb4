"""Measured impact matches a scripted truth: error rate ±2 pp, customers exact, TTR within one interval.

Uses the engine's classes directly (no pytest plugin): they work without pytest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.catalog import load_catalog
from chaos.environments.local import LocalEnvironment
from chaos.experiment import Experiment, ExperimentSettings
from chaos.impact import Outcome
from chaos.ledger import Ledger
from faults.base import Recipe
from faults.process import stop
from tests.integration.scripted import FIXTURES, scripted

INTERVAL = 0.1  # the journey's probe interval in the fixture catalog


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalEnvironment, Ledger, Path]]:
    state = tmp_path_factory.mktemp("state")
    ready_file = state / "ready"
    os.environ["READY_FILE"] = str(ready_file)  # inherited by the service: its real start time
    catalog = load_catalog(FIXTURES / "groundtruth" / "chaos.yaml")
    ledger = Ledger(state)
    ledger.open()
    env = LocalEnvironment.from_catalog(
        catalog, run_id=ledger.run_id, state_dir=state / "run", tracker=ledger
    )
    try:
        env.start()
        yield env, ledger, ready_file
    finally:
        env.stop()
        ledger.close()
        os.environ.pop("READY_FILE", None)
    assert not ledger.path.exists(), "every fault and process was released from the ledger"


def _experiment(running, name: str) -> Experiment:
    env, ledger, _ = running
    assert env.reconcile() == []
    return Experiment(env, ledger, name=name, settings=ExperimentSettings(baseline=0.5))


def test_thirty_percent_failures_are_measured_within_two_points(running) -> None:
    exp = _experiment(running, "ratio")
    with exp.inject(scripted("svc", fail_ratio=0.3)):
        exp.observe("4s")
    exp.recover(rto="3s")
    record = exp.finish()
    work = record.impacts["work"]
    assert work.samples >= 100
    assert abs(work.error_rate - 0.30) <= 0.02, work
    assert work.customers == 4 and work.customers_affected == 4
    assert work.error_kinds == {"http-503": work.errors}
    assert work.ttd is not None and work.ttd <= INTERVAL + 0.05
    assert record.outcome is Outcome.DEGRADED
    assert work.ttr is not None and work.ttr <= INTERVAL


def test_customers_affected_is_exact(running) -> None:
    exp = _experiment(running, "two customers")
    with exp.inject(scripted("svc", fail_customers=[1, 3])):
        exp.observe("1.5s")
    exp.recover(rto="3s")
    work = exp.finish().impacts["work"]
    assert (work.customers, work.customers_affected) == (4, 2)
    assert abs(work.error_rate - 0.5) <= 0.05


def test_a_stop_of_exactly_two_seconds_has_ttr_within_one_interval_of_truth(running) -> None:
    _, _, ready_file = running
    exp = _experiment(running, "stopped 2s")
    with exp.inject(stop("svc")):
        exp.observe("2s")
    ttr = exp.recover(rto="5s")
    record = exp.finish()
    back_up = float(ready_file.read_text().split()[-1])  # monotonic time the socket listened again
    assert exp.fault_ended_at is not None
    truth = max(0.0, back_up - exp.fault_ended_at)
    assert truth - 0.01 <= ttr <= truth + INTERVAL, (ttr, truth)
    work = record.impacts["work"]
    assert work.customers_affected == 4
    assert work.error_rate >= 0.95
    # refused while down; a request in flight at the moment of the stop is reset
    assert set(work.error_kinds) <= {"connection-refused", "connection-reset"}
    assert work.error_kinds.get("connection-refused", 0) >= work.errors - 4
    assert record.outcome is Outcome.DEGRADED
    assert record.faults[0].kind == "stop" and record.faults[0].reverted_at is not None


def test_a_tolerated_fault_leaves_steady_state_untouched(running) -> None:
    exp = _experiment(running, "harmless")
    with exp.inject(scripted("svc", fail_customers=[])):
        exp.observe("0.5s")
    assert exp.recover(rto="2s") == 0.0
    assert exp.finish().outcome is Outcome.TOLERATED


def test_finish_reverts_a_fault_entry_an_interrupt_left_open(running) -> None:
    """An interrupt between the ledger write and the undo registration must not leave it open."""
    _, ledger, _ = running
    exp = _experiment(running, "stray entry")
    exp.baseline()
    stray = ledger.acquire("stray fault", Recipe("none"), kind="fault")
    assert stray in {e.id for e in ledger.open_entries}
    exp.finish()
    assert stray not in {e.id for e in ledger.open_entries}
    assert all(e.kind != "fault" for e in ledger.open_entries)
