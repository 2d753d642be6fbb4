"""History checkers on hand-made histories: each anomaly is caught, correct histories pass, and
indeterminate (info) operations are never held against the system."""

from __future__ import annotations

import threading

import pytest

from chaos.checkers import (
    Anomaly,
    all_of,
    custom,
    duplicate_effects,
    history_invariant,
    lost_writes,
    read_your_writes,
)
from chaos.errors import ExperimentMisuse, InvariantViolated
from chaos.history import History, Op, OpType, Recorder, completion_type
from chaos.impact import Sample
from chaos.probes import JourneyFailed


def ops(*rows: tuple) -> History:
    """(process, type, f, value) rows at times 0, 1, 2, …"""
    return History(tuple(Op(p, t, f, v, float(i)) for i, (p, t, f, v) in enumerate(rows)))


def writes_then_read(read_value: list, *writes: tuple[str, int]) -> History:
    """Process 0 writes each value with the given outcome, then process 1 reads once."""
    rows: list[tuple] = []
    for outcome, value in writes:
        rows += [(0, "invoke", "write", value), (0, outcome, "write", value)]
    rows += [(1, "invoke", "read", None), (1, "ok", "read", read_value)]
    return ops(*rows)


# -- histories ---------------------------------------------------------------------------------


def test_operations_pair_invocations_with_completions() -> None:
    history = ops(
        (0, "invoke", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", []),
        (0, "info", "write", 1),
        (2, "invoke", "write", 2),  # never completed: the process crashed
    )
    pairs = history.operations()
    assert [(op.process, op.type, op.value) for op in pairs] == [
        (0, OpType.INFO, 1),
        (1, OpType.OK, []),
        (2, OpType.INFO, 2),
    ]
    assert pairs[2].completion is None and pairs[2].end == float("inf")
    assert [op.f for op in history.operations("read")] == ["read"]


def test_malformed_histories_are_refused() -> None:
    with pytest.raises(ExperimentMisuse, match="invokes again before completing"):
        ops((0, "invoke", "write", 1), (0, "invoke", "write", 2))
    with pytest.raises(ExperimentMisuse, match="completes nothing"):
        ops((0, "ok", "write", 1))
    with pytest.raises(ExperimentMisuse, match="completes nothing"):
        ops((0, "invoke", "write", 1), (0, "ok", "read", 1))
    with pytest.raises(ExperimentMisuse, match="not one of invoke, ok, fail, info"):
        Op(0, "done", "write")


def test_error_kinds_split_into_definite_failures_and_indeterminate() -> None:
    assert completion_type(None) is OpType.OK
    assert completion_type("connection-refused") is OpType.FAIL
    assert completion_type("http-409") is OpType.FAIL
    for unknown in ("timeout", "connection-reset", "http-503", "http-502", "network"):
        assert completion_type(unknown) is OpType.INFO


def test_history_from_samples_keeps_times_values_and_indeterminacy() -> None:
    samples = [
        Sample(0.0, "buy", 0, True, 0.5, None, {"id": "a"}),
        Sample(0.2, "buy", 1, False, 1.0, "timeout"),
        Sample(0.6, "buy", 0, False, 0.1, "connection-refused"),
    ]
    history = History.from_samples(samples)
    assert [(op.process, op.type, op.time) for op in history] == [
        ("buy/0", OpType.INVOKE, 0.0),
        ("buy/1", OpType.INVOKE, 0.2),
        ("buy/0", OpType.OK, 0.5),
        ("buy/0", OpType.INVOKE, 0.6),
        ("buy/0", OpType.FAIL, 0.7),
        ("buy/1", OpType.INFO, 1.2),
    ]
    assert history.operations()[0].value == {"id": "a"}


def test_recorder_records_ok_fail_and_info_from_journey_outcomes() -> None:
    recorder = Recorder()
    with recorder.op(0, "write", "a"):
        pass
    with recorder.op(0, "write", "b") as op:
        op.ok("b-id")
    for error in (JourneyFailed("connection-refused", "down"), JourneyFailed("timeout", "slow")):
        with pytest.raises(JourneyFailed), recorder.op(1, "write", error.kind):
            raise error
    done = recorder.history().operations()
    assert [(op.type, op.value) for op in done] == [
        (OpType.OK, "a"),
        (OpType.OK, "b-id"),
        (OpType.FAIL, "connection-refused"),
        (OpType.INFO, "timeout"),
    ]
    recorder.clear()
    assert len(recorder.history()) == 0


def test_recorder_is_thread_safe_and_refuses_an_incomplete_history() -> None:
    recorder = Recorder(max_ops=10_000)

    def client(process: int) -> None:
        for n in range(200):
            with recorder.op(process, "write", (process, n)):
                pass

    threads = [threading.Thread(target=client, args=(p,)) for p in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(recorder.history().operations()) == 1600
    small = Recorder(max_ops=3)
    for n in range(2):
        with small.op(0, "write", n):
            pass
    with pytest.raises(ExperimentMisuse, match="dropped 1 ops"):
        small.history()


# -- lost writes ---------------------------------------------------------------------------------


def test_lost_write_is_caught_and_a_correct_history_passes() -> None:
    check = lost_writes()
    lost = check(writes_then_read([1, 3], ("ok", 1), ("ok", 2), ("ok", 3)))
    assert not lost.valid
    assert [(a.kind, a.ops[0].value) for a in lost.anomalies] == [("lost", 2)]
    assert "acknowledged 2 is missing" in lost.explain()
    kept = check(writes_then_read([1, 2, 3], ("ok", 1), ("ok", 2), ("ok", 3)))
    assert kept.valid and kept.stats["acknowledged"] == 3


def test_info_writes_are_indeterminate_but_failed_writes_must_not_appear() -> None:
    check = lost_writes()
    either = check(writes_then_read([1], ("ok", 1), ("info", 2), ("info", 3)))
    assert either.valid
    present = check(writes_then_read([1, 2], ("ok", 1), ("info", 2)))
    assert present.valid and present.stats["recovered"] == 1
    ghost = check(writes_then_read([1, 2], ("ok", 1), ("fail", 2)))
    assert [a.kind for a in ghost.anomalies] == ["failed-write-visible"]


def test_writes_concurrent_with_the_final_read_are_not_required() -> None:
    history = ops(
        (1, "invoke", "read", None),
        (0, "invoke", "write", 9),
        (0, "ok", "write", 9),  # acknowledged while the read was in flight
        (1, "ok", "read", []),
    )
    assert lost_writes()(history).valid


def test_no_final_read_is_not_a_pass() -> None:
    result = lost_writes()(ops((0, "invoke", "write", 1), (0, "ok", "write", 1)))
    assert not result.valid and result.anomalies[0].kind == "no-final-read"


def test_lost_writes_with_element_keys() -> None:
    check = lost_writes(element=lambda v: v["id"] if isinstance(v, dict) else v)
    history = writes_then_read(["a"], ("ok", {"id": "a"}), ("ok", {"id": "b"}))
    assert [a.detail for a in check(history).anomalies] == ["acknowledged 'b' is missing"]


# -- duplicates ----------------------------------------------------------------------------------


def test_an_order_paid_twice_is_a_duplicate_effect() -> None:
    paid = [
        {"order": "o1", "charge": "c1"},
        {"order": "o2", "charge": "c2"},
        {"order": "o1", "charge": "c3"},
    ]
    check = duplicate_effects(key=lambda payment: payment["order"])
    result = check(ops((0, "invoke", "read", None), (0, "ok", "read", paid)))
    assert not result.valid
    assert [a.detail for a in result.anomalies] == ["'o1' appears 2 times in one 'read'"]
    once = check(ops((0, "invoke", "read", None), (0, "ok", "read", paid[:2])))
    assert once.valid


def test_two_writes_acknowledged_with_one_key_are_duplicates() -> None:
    history = ops(
        (0, "invoke", "write", "x"),
        (0, "ok", "write", "order-7"),
        (1, "invoke", "write", "y"),
        (1, "ok", "write", "order-7"),
        (2, "invoke", "write", "z"),
        (2, "info", "write", "z"),
    )
    result = duplicate_effects(write="write")(history)
    assert [a.kind for a in result.anomalies] == ["duplicate"]
    assert len(result.anomalies[0].ops) == 2


# -- read your writes ----------------------------------------------------------------------------


def test_read_your_writes_catches_a_stale_read_in_the_same_session() -> None:
    history = ops(
        (0, "invoke", "write", "a"),
        (0, "ok", "write", "a"),
        (1, "invoke", "read", None),  # another session need not see it
        (1, "ok", "read", []),
        (0, "invoke", "read", None),
        (0, "ok", "read", []),  # stale: process 0's own write is missing
    )
    result = read_your_writes()(history)
    assert [a.kind for a in result.anomalies] == ["stale-read"]
    assert result.anomalies[0].ops[1].process == 0


def test_read_your_writes_passes_and_ignores_indeterminate_writes() -> None:
    history = ops(
        (0, "invoke", "write", "a"),
        (0, "ok", "write", "a"),
        (0, "invoke", "write", "b"),
        (0, "info", "write", "b"),  # may or may not have happened
        (0, "invoke", "read", None),
        (0, "ok", "read", ["a"]),
    )
    assert read_your_writes()(history).valid


def test_read_your_writes_on_a_register_checks_the_latest_write() -> None:
    history = ops(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (0, "invoke", "write", 2),
        (0, "ok", "write", 2),
        (0, "invoke", "read", None),
        (0, "ok", "read", 1),
    )
    result = read_your_writes(latest_only=True)(history)
    assert [a.detail for a in result.anomalies] == ["0 wrote 2, then read 1"]


# -- your own checkers and the verify adapter ----------------------------------------------------


def test_custom_and_combined_checkers() -> None:
    def too_many_fails(history: History) -> list[str]:
        failed = [op for op in history.operations() if op.type is OpType.FAIL]
        return [f"{len(failed)} failed operations"] if len(failed) > 1 else []

    history = ops(
        (0, "invoke", "write", 1),
        (0, "fail", "write", 1),
        (0, "invoke", "write", 2),
        (0, "fail", "write", 2),
        (1, "invoke", "read", None),
        (1, "ok", "read", []),
    )
    mine = custom("few failures", too_many_fails)
    assert mine(history).anomalies == (Anomaly("few failures", "2 failed operations"),)
    both = all_of(mine, lost_writes())(history)
    assert not both.valid and both.checker == "few failures + lost writes"


def test_history_invariant_runs_under_verify_with_a_final_read() -> None:
    recorder = Recorder()
    for value in ("a", "b"):
        with recorder.op(0, "write", value):
            pass
    stored = {"a"}  # the system lost "b"
    check = history_invariant(
        lost_writes(), recorder.history, final_read=lambda env: sorted(stored), name="orders kept"
    )
    assert check.__name__ == "orders kept"
    with pytest.raises(InvariantViolated, match="acknowledged 'b' is missing"):
        check(None)
    stored.add("b")
    check(None)  # passes now
