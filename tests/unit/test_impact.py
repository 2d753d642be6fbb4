"""Impact, SLO and recovery arithmetic on scripted samples, with exact expected numbers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.catalog import Slo
from chaos.impact import (
    Impact,
    Outcome,
    Sample,
    SloVerdict,
    SteadyState,
    Window,
    classify,
    impact,
    impacts,
    percentile,
    recovery_index,
    slo_holds,
    steady_verdict,
    time_to_recover,
)

FAST = 0.0625  # binary-exact latencies keep the expected numbers exact
SLOW = 2.0


def sample(t, ok=True, customer=0, latency=FAST, error=None, journey="checkout"):
    if not ok and error is None:
        error = "http-503"
    return Sample(t, journey, customer, ok, latency, error)


def timeline(start, count, *, customers=2, interval=1.0, fail_before=None, fail_at=()):
    """Staggered customers as a Probe runs them; failing where scripted."""
    step = interval / customers
    out = []
    for k in range(count):
        t = start + k * step
        failed = (fail_before is not None and t < fail_before) or t in fail_at
        out.append(sample(t, ok=not failed, customer=k % customers))
    return out


# -- percentile ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1), (10, 1), (11, 2), (50, 5), (90, 9), (91, 10), (95, 10), (100, 10)],
)
def test_percentile_is_nearest_rank(q, expected):
    assert percentile([7, 3, 10, 1, 5, 2, 9, 4, 8, 6], q) == expected


def test_percentile_of_twenty_values_p95_is_the_nineteenth():
    assert percentile(range(1, 21), 95) == 19
    assert percentile(range(1, 21), 99) == 20


def test_percentile_of_nothing_is_none_and_q_is_checked():
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


# -- slo_holds ----------------------------------------------------------------------------


def test_success_ratio_exactly_at_the_slo_holds():
    samples = [sample(i, ok=i != 3) for i in range(10)]  # 9 of 10
    verdict = slo_holds(samples, Slo(success=0.9))
    assert verdict == SloVerdict(True, 0.9, FAST, FAST, 10, ())


def test_success_ratio_below_the_slo_names_the_counts():
    samples = [sample(i, ok=i != 3) for i in range(10)]
    verdict = slo_holds(samples, Slo(success=0.95))
    assert not verdict.holds
    assert verdict.reasons == ("success 9/10 = 90.00% < SLO 95.00% (1 attempts failed)",)


def test_latency_percentiles_against_the_slo():
    one_slow = [sample(i, latency=SLOW if i == 0 else FAST) for i in range(20)]
    assert slo_holds(one_slow, Slo(success=1.0, p95=0.5)).p95 == FAST
    assert slo_holds(one_slow, Slo(success=1.0, p95=0.5)).holds
    verdict = slo_holds(one_slow, Slo(success=1.0, p99=0.5))
    assert (verdict.holds, verdict.p99, verdict.reasons) == (
        False,
        SLOW,
        ("p99 2.00s > SLO 500ms",),
    )
    two_slow = [sample(i, latency=SLOW if i < 2 else FAST) for i in range(20)]
    assert slo_holds(two_slow, Slo(success=1.0, p95=0.5)).reasons == ("p95 2.00s > SLO 500ms",)


def test_no_samples_is_not_steady_state():
    verdict = slo_holds([], Slo(success=0.5))
    assert verdict == SloVerdict(False, None, None, None, 0, ("only 0 samples, need at least 1",))
    assert not slo_holds([sample(0)], Slo(), min_samples=2).holds


# -- recovery -----------------------------------------------------------------------------


def test_ttr_is_the_first_sample_of_the_recovered_run():
    samples = timeline(10.0, 12, fail_before=12.0)  # revert at 10, fine from t=12.0
    assert time_to_recover(samples, 10.0, Slo(success=1.0)) == 2.0


def test_ttr_ignores_input_order():
    samples = timeline(10.0, 12, fail_before=12.0)
    assert time_to_recover(list(reversed(samples)), 10.0, Slo(success=1.0)) == 2.0


def test_recovery_then_relapse_counts_from_the_last_recovery():
    samples = timeline(10.0, 14, fail_before=12.0, fail_at=(13.0,))
    assert time_to_recover(samples, 10.0, Slo(success=1.0)) == 3.5


def test_a_single_success_is_not_a_recovery_when_hold_is_two():
    samples = timeline(10.0, 14, fail_before=12.0, fail_at=(12.5,))
    assert time_to_recover(samples, 10.0, Slo(success=0.5)) == 3.0  # hold = 2 customers
    assert time_to_recover(samples, 10.0, Slo(success=0.5), hold=1) == 2.0
    assert time_to_recover(samples, 10.0, Slo(success=0.5), hold=3) == 3.0
    assert time_to_recover(samples, 10.0, Slo(success=1.0), hold=1) == 3.0  # 12.5 breaks it


def test_relapse_right_after_recovery_breaks_a_lenient_slo_too():
    samples = timeline(10.0, 30, fail_before=11.0, fail_at=(12.0,))
    assert time_to_recover(samples, 10.0, Slo(success=0.9)) == 2.5


def test_sporadic_failure_the_slo_allows_does_not_move_recovery():
    samples = timeline(10.0, 40, fail_before=11.0, fail_at=(21.0,))
    assert time_to_recover(samples, 10.0, Slo(success=0.9)) == 1.0
    assert time_to_recover(samples, 10.0, Slo(success=1.0)) == 11.5


def test_slow_but_successful_answers_are_not_recovered():
    samples = [
        sample(10.0 + k / 2, customer=k % 2, latency=SLOW if k < 6 else FAST) for k in range(20)
    ]
    assert time_to_recover(samples, 10.0, Slo(success=1.0, p95=1.0)) == 3.0
    assert time_to_recover(samples, 10.0, Slo(success=1.0)) == 0.0


def test_already_healthy_at_revert_is_zero():
    samples = timeline(5.0, 30)
    assert time_to_recover(samples, 9.75, Slo(success=1.0)) == 0.0


def test_failing_just_before_revert_then_fine_is_the_first_sample_after():
    samples = timeline(5.0, 30, fail_before=9.75)
    assert time_to_recover(samples, 9.75, Slo(success=1.0)) == 0.25


def test_slow_just_before_revert_is_not_already_healthy():
    samples = [sample(9.5, latency=SLOW), *timeline(10.0, 10)]
    assert time_to_recover(samples, 9.75, Slo(success=1.0, p99=1.0)) == 0.25
    assert time_to_recover(samples, 9.75, Slo(success=1.0)) == 0.0


def test_never_recovered_or_no_data_is_none():
    assert time_to_recover(timeline(10.0, 10, fail_before=99.0), 10.0, Slo()) is None
    assert time_to_recover([], 10.0, Slo()) is None
    assert time_to_recover(timeline(0.0, 10), 10.0, Slo()) is None  # nothing after revert
    assert time_to_recover(timeline(10.0, 9, fail_before=14.0), 10.0, Slo(success=1.0)) is None


def test_hold_must_be_positive():
    with pytest.raises(ValueError, match="hold"):
        recovery_index([sample(0.0)], Slo(), hold=0)


def test_steady_verdict_describes_the_samples_since_recovery():
    samples = timeline(0.0, 20, fail_before=3.0)  # 6 failures, then 14 successes
    verdict = steady_verdict(samples, Slo(success=0.99), hold=2, min_samples=4)
    assert (verdict.holds, verdict.samples, verdict.success_ratio) == (True, 14, 1.0)
    assert not steady_verdict(samples, Slo(), hold=2, min_samples=15).holds


def test_steady_verdict_without_recovery_point_explains_why():
    samples = timeline(0.0, 6, fail_at=(1.0, 2.5))
    verdict = steady_verdict(samples, Slo(success=1.0), hold=2, min_samples=1)
    assert not verdict.holds
    assert verdict.samples == 6
    assert verdict.reasons[0] == "success 4/6 = 66.67% < SLO 100.00% (2 attempts failed)"
    assert verdict.reasons[1].startswith("no 2 consecutive successes")


def test_steady_state_holds_only_if_every_journey_does():
    good, bad = SloVerdict(True, 1.0, 0.1, 0.1, 5), SloVerdict(False, 0.5, 0.1, 0.1, 4, ("x",))
    assert SteadyState(1.0, {"a": good}).holds
    state = SteadyState(1.0, {"a": good, "b": bad})
    assert (state.holds, state.explain()) == (False, "b: x")


# -- impact -------------------------------------------------------------------------------


def _fault_samples():
    """4 customers, 1 s interval, fault window [10, 20): 40 attempts inside, 3 failing."""
    out = []
    for k in range(52):
        t = 8.0 + k * 0.25
        customer = k % 4
        failing = {12.25: "http-503", 13.25: "http-503", 15.5: "timeout"}.get(t)
        if t in (9.0, 20.0):  # outside the window: must not count
            failing = "connection-refused"
        latency = SLOW if failing == "timeout" else 0.125 if failing else FAST
        out.append(sample(t, ok=failing is None, customer=customer, latency=latency, error=failing))
    return out


def test_impact_numbers_are_exact():
    measured = impact(_fault_samples(), Window(10.0, 20.0), Slo(success=0.95), ttr=1.5)
    assert measured == Impact(
        journey="checkout",
        samples=40,
        errors=3,
        error_rate=0.075,
        p50=FAST,
        p95=0.125,
        p99=SLOW,
        customers=4,
        customers_affected=2,
        ttd=2.375,  # first failure started at 12.25 and was seen 0.125 s later
        ttr=1.5,
        slo_held=False,
        error_kinds={"http-503": 2, "timeout": 1},
        slo_reasons=("success 37/40 = 92.50% < SLO 95.00% (3 attempts failed)",),
    )


def test_impact_slo_held_when_the_slo_allows_the_errors():
    measured = impact(_fault_samples(), Window(10.0, 20.0), Slo(success=0.9, p95=0.2), ttr=0.0)
    assert measured.slo_held
    assert measured.slo_reasons == ()


def test_impact_to_json_is_plain_json():
    measured = impact(_fault_samples(), Window(10.0, 20.0), Slo(), ttr=None)
    data = json.loads(json.dumps(measured.to_json()))
    assert data["error_kinds"] == {"http-503": 2, "timeout": 1}
    assert data["ttr"] is None
    assert data["customers_affected"] == 2


def test_impact_without_failures_or_samples():
    clean = impact(timeline(10.0, 8), Window(10.0, 14.0), Slo(success=1.0), ttr=0.0)
    assert (clean.errors, clean.error_rate, clean.ttd, clean.slo_held) == (0, 0.0, None, True)
    empty = impact([], Window(10.0, 14.0), Slo(), ttr=None, journey="search")
    assert (empty.journey, empty.samples, empty.error_rate, empty.p95) == ("search", 0, 0.0, None)
    assert not empty.slo_held


def test_impacts_per_journey_names_journeys_without_samples():
    result = impacts(
        {"checkout": _fault_samples()},
        Window(10.0, 20.0),
        {"checkout": Slo(success=0.9), "search": Slo()},
        {"checkout": 0.5},
    )
    assert result["checkout"].errors == 3
    assert result["checkout"].ttr == 0.5
    assert (result["search"].journey, result["search"].samples, result["search"].ttr) == (
        "search",
        0,
        None,
    )


# -- outcome ------------------------------------------------------------------------------


def _impact(held: bool) -> Impact:
    samples = timeline(10.0, 4, fail_at=() if held else (10.5,))
    return impact(samples, Window(10.0, 12.0), Slo(success=1.0), ttr=0.0)


def test_classify():
    held, broke = _impact(True), _impact(False)
    assert classify({"a": held, "b": held}, recovered=True) is Outcome.TOLERATED
    assert classify([held, broke], recovered=True) is Outcome.DEGRADED
    assert classify([held], recovered=False) is Outcome.NOT_RECOVERED
    assert classify([held], recovered=True, broken=True) is Outcome.BROKEN
    assert [o.value for o in Outcome] == ["tolerated", "degraded", "not-recovered", "broken"]


# -- properties ---------------------------------------------------------------------------

samples_strategy = st.lists(
    st.builds(
        Sample,
        t=st.integers(0, 120).map(lambda k: k / 4),  # ties and exact sums on purpose
        journey=st.just("j"),
        customer=st.integers(0, 5),
        ok=st.booleans(),
        latency=st.sampled_from([0.01, 0.1, 0.5, 1.0, 3.0]),
        error=st.sampled_from([None, "timeout"]),
    ),
    max_size=60,
)
slo_strategy = st.builds(
    Slo,
    success=st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]),
    p95=st.sampled_from([None, 0.2, 1.0]),
    p99=st.sampled_from([None, 0.6, 2.0]),
)


@given(samples_strategy, st.floats(0, 30), st.floats(0, 30))
def test_impact_invariants(samples, a, b):
    measured = impact(samples, Window(min(a, b), max(a, b)), Slo(), ttr=None)
    assert 0.0 <= measured.error_rate <= 1.0
    assert measured.errors <= measured.samples
    assert measured.customers_affected <= measured.customers
    assert sum(measured.error_kinds.values()) == measured.errors
    if measured.ttd is not None:
        assert measured.ttd >= 0


@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.floats(0, 100), st.floats(0, 100)
)
def test_percentile_is_monotone_in_q_and_one_of_the_values(values, q1, q2):
    low, high = percentile(values, min(q1, q2)), percentile(values, max(q1, q2))
    assert low <= high
    assert low in values and high in values


def _naive_recovery(ordered, slo, hold):
    """The definition, spelled out: hold successes, then the SLO on every running window."""
    for i in range(len(ordered) - hold + 1):
        if all(s.ok for s in ordered[i : i + hold]) and all(
            slo_holds(ordered[i : j + 1], slo).holds for j in range(i + hold - 1, len(ordered))
        ):
            return i
    return None


@settings(max_examples=300)
@given(samples_strategy, slo_strategy, st.integers(1, 4))
def test_recovery_index_matches_the_definition(samples, slo, hold):
    ordered = sorted(samples, key=lambda s: (s.t, s.customer))
    assert recovery_index(ordered, slo, hold=hold) == _naive_recovery(ordered, slo, hold)


@given(samples_strategy, slo_strategy, st.integers(0, 120).map(lambda k: k / 4))
def test_after_recovery_the_slo_holds(samples, slo, revert_at):
    unique = list({s.t: s for s in samples}.values())
    ttr = time_to_recover(unique, revert_at, slo)
    if ttr is not None:
        assert ttr >= 0
        assert slo_holds([s for s in unique if s.t >= revert_at + ttr], slo).holds
