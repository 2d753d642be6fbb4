"""pytest-xdist runs: workers' records travel as JSON, and the controller merges them like a serial run."""

from __future__ import annotations

import json

import pytest

from chaos.environments.compose_config import fixed_host_bindings
from chaos.errors import ChaosError, ParallelRunConflict
from chaos.impact import Impact, Outcome
from chaos.parallel import (
    KEY,
    WorkerMerge,
    WorkerRole,
    check_parallel_safe,
    merge_environments,
    read_worker_output,
    worker_input,
    worker_output,
)
from chaos.record import ExperimentRecord, FaultRecord, PhaseTiming


def record(test_id: str, outcome: Outcome = Outcome.DEGRADED) -> ExperimentRecord:
    impact = Impact(
        journey="work",
        samples=40,
        errors=6,
        error_rate=0.15,
        p50=0.002,
        p95=0.01,
        p99=None,
        customers=4,
        customers_affected=2,
        ttd=0.1,
        ttr=0.3,
        slo_held=False,
        error_kinds={"http 503": 6},
        slo_reasons=("success 85.0% < 95.0%",),
    )
    return ExperimentRecord(
        test_id=test_id,
        name=test_id.split("::")[-1],
        outcome=outcome,
        services=("svc",),
        faults=(FaultRecord("latency", "web -> svc", {"delay": 0.8}, "latency 800ms", 0.3, 1.1),),
        impacts={"work": impact},
        baseline={"work": {"success": 1.0, "p95": 0.004}},
        phases=(PhaseTiming("baseline", 0.0, 0.3), PhaseTiming("inject", 0.3, 0.0, "latency")),
        rto=5.0,
        ttr=0.25,
        seed=7,
        repairs=("restarted svc",),
        failure_mode="latency web -> svc",
        extra={"timeline": {"t": [0.0, 0.1]}},
    )


def test_a_record_survives_its_journal_json() -> None:
    original = record("t.py::test_a")
    assert ExperimentRecord.from_json(original.to_json()) == original
    sent = json.loads(json.dumps(original.to_json()))  # what crosses the process boundary
    assert ExperimentRecord.from_json(sent).to_json() == original.to_json()


def test_a_broken_record_names_the_experiment_and_the_field() -> None:
    data = record("t.py::test_a").to_json()
    del data["outcome"]
    with pytest.raises(ChaosError, match=r"'t.py::test_a': field 'outcome' is missing"):
        ExperimentRecord.from_json(data)
    with pytest.raises(ChaosError, match="not a pytest-chaos experiment record"):
        ExperimentRecord.from_json({**record("x").to_json(), "outcome": "fine"})


def test_workers_get_the_controllers_run_id_and_seed() -> None:
    workerinput = {"workerid": "gw1", "workercount": 2, KEY: worker_input("20260101T000000-abc", 7)}
    role = WorkerRole.from_workerinput(workerinput)
    assert role == WorkerRole("gw1", 2, "20260101T000000-abc", 7)
    assert role.own_run_id == "20260101T000000-abc-gw1"  # its ledger and Compose project
    assert WorkerRole.from_workerinput({"workerid": "gw0", "workercount": 2}) is None


def test_what_a_worker_sends_reads_back_with_its_environment() -> None:
    text = worker_output("gw0", [record("t.py::test_a")], {"kind": "local", "run_id": "r-gw0"})
    report = read_worker_output("gw0", text)
    assert report.records == (record("t.py::test_a"),)
    assert report.environment == {"kind": "local", "run_id": "r-gw0"}
    with pytest.raises(ChaosError, match="worker gw3: its experiments are not JSON"):
        read_worker_output("gw3", "{")
    with pytest.raises(ChaosError, match="different pytest-chaos versions"):
        read_worker_output("gw3", text.replace('"version": 1', '"version": 9'))


def _down(merge: WorkerMerge, worker: str, *test_ids: str, error: object = None) -> None:
    facts = {"kind": "local", "run_id": f"r-{worker}"}
    output = {KEY: worker_output(worker, [record(t) for t in test_ids], facts), "exitstatus": 0}
    merge.node_down(worker, output, error)


def test_the_merge_restores_collection_order_and_takes_each_worker_once() -> None:
    merge = WorkerMerge()
    merge.collected(["t.py::test_one", "t.py::test_two", "t.py::test_three", "t.py::test_four"])
    _down(merge, "gw1", "t.py::test_two", "t.py::test_four")
    _down(merge, "gw0", "t.py::test_three", "t.py::test_one")
    _down(merge, "gw1", "t.py::test_two", "t.py::test_four", error="keyboard-interrupt")  # again
    names = [r.name for r in merge.records()]
    assert names == ["test_one", "test_two", "test_three", "test_four"]
    assert merge.workers == ["gw0", "gw1"]
    assert merge.environment() == {
        "kind": "local",
        "run_id": "gw0: r-gw0; gw1: r-gw1",
        "xdist_workers": "gw0, gw1",
    }
    assert merge.lines() == [
        "chaos: 4 experiment(s) merged from 2 pytest-xdist worker(s) (gw0, gw1)"
    ]


def test_a_worker_that_died_is_reported_not_silently_dropped() -> None:
    merge = WorkerMerge()
    _down(merge, "gw0", "t.py::test_one")
    merge.node_down("gw1", None, "Not properly terminated")
    merge.node_down("gw2", {KEY: "{"}, None)
    assert [r.name for r in merge.records()] == ["test_one"]
    lines = merge.lines()
    assert lines[1] == (
        "chaos: worker gw1 went down (Not properly terminated); any experiments it ran are "
        "missing from the journal"
    )
    assert lines[2].startswith("chaos: worker gw2: its experiments are not JSON")


def test_environment_facts_keep_one_value_when_workers_agree() -> None:
    merged = merge_environments({"gw0": {"kind": "compose"}, "gw1": {"kind": "compose", "x": "1"}})
    assert merged == {"kind": "compose", "x": "1", "xdist_workers": "gw0, gw1"}
    assert merge_environments({}) == {}
    quiet = WorkerMerge()  # a suite without experiments, run with -n 2
    _down(quiet, "gw0")
    assert quiet.lines() == [] and quiet.records() == []


def test_fixed_things_on_several_workers_are_a_conflict_that_says_what_to_do() -> None:
    two = WorkerRole("gw0", 2, "r", 7)
    check_parallel_safe("local", ["svc port 18111"], "fix it", None)  # serial run
    check_parallel_safe("local", ["svc port 18111"], "fix it", WorkerRole("gw0", 1, "r", 7))
    check_parallel_safe("local", [], "fix it", two)  # every port is free per worker
    with pytest.raises(ParallelRunConflict) as raised:
        check_parallel_safe("local", ["svc port 18111"], "set `port: 0` for them", two)
    assert str(raised.value) == (
        "--chaos-env local under pytest-xdist with 2 workers: every worker starts its own copy of "
        "the environment, and these are fixed, so the copies would collide: svc port 18111. "
        "Either set `port: 0` for them, or run the chaos tests on one worker (`-n 0` or `-n 1`)"
    )


def test_compose_host_ports_and_container_names_are_fixed_bindings() -> None:
    config = {
        "services": {
            "db": {"ports": [{"target": 5432, "published": "15432", "host_ip": "127.0.0.1"}]},
            "web": {"ports": ["127.0.0.1:8000:80", "127.0.0.1::81", "82"], "container_name": "w"},
            "cache": {"ports": [{"target": 6379}]},
        }
    }
    assert fixed_host_bindings(config) == [
        "db host port 15432",
        "web host port 8000",
        "web container_name w",
    ]
