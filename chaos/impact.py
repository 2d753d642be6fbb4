"""Customer impact as pure functions of probe samples and the fault window: exact and testable."""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Protocol

from chaos.units import format_duration

__all__ = [
    "Impact",
    "Outcome",
    "Sample",
    "SloLike",
    "SloVerdict",
    "SteadyState",
    "Window",
    "classify",
    "impact",
    "impacts",
    "percentile",
    "recovery_index",
    "slo_holds",
    "steady_verdict",
    "time_to_recover",
]


class SloLike(Protocol):
    """What impact needs of a journey SLO (chaos.catalog.Slo): success ratio, latencies in s."""

    @property
    def success(self) -> float: ...
    @property
    def p95(self) -> float | None: ...
    @property
    def p99(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Sample:
    """One attempt of one synthetic customer; `t` is its start on the probes' monotonic clock."""

    t: float
    journey: str
    customer: int
    ok: bool
    latency: float
    error: str | None = None
    value: object = None

    @property
    def end(self) -> float:
        """When the customer saw the outcome of this attempt."""
        return self.t + self.latency


@dataclass(frozen=True, slots=True)
class Window:
    """The fault window, inject → revert; a sample belongs to it when start <= sample.t < end."""

    start: float
    end: float

    def __contains__(self, sample: object) -> bool:
        return isinstance(sample, Sample) and self.start <= sample.t < self.end

    @property
    def duration(self) -> float:
        return self.end - self.start


def _exact(number: float) -> Fraction:
    """The decimal the user wrote (0.9, not its binary neighbour): exact ratio comparisons."""
    return Fraction(repr(float(number)))


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q% of the values <= it.

    `q` is in percent (0..100). It is always one of the values (never interpolated), q=0 gives
    the minimum, q=100 the maximum; None when there are no values. p_q <= X exactly when
    100 * count(v <= X) >= q * n, which is what the SLO and recovery checks rely on.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100 (percent), got {q!r}")
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(_exact(q) * len(ordered) / 100))
    return ordered[rank - 1]


def _meets(good: int, total: int, ratio: Fraction) -> bool:
    """good/total >= ratio, exactly (no float rounding at the boundary)."""
    return good * ratio.denominator >= ratio.numerator * total


@dataclass(frozen=True, slots=True)
class SloVerdict:
    """Whether a set of samples meets a journey SLO, with the numbers and the reasons why not."""

    holds: bool
    success_ratio: float | None
    p95: float | None
    p99: float | None
    samples: int
    reasons: tuple[str, ...] = ()

    def explain(self) -> str:
        return "SLO holds" if self.holds else "; ".join(self.reasons)


def _latency_reason(name: str, measured: float | None, target: float | None) -> str | None:
    if target is None or measured is None or measured <= target:
        return None
    return f"{name} {format_duration(measured)} > SLO {format_duration(target)}"


def slo_holds(samples: Sequence[Sample], slo: SloLike, *, min_samples: int = 1) -> SloVerdict:
    """Check success ratio and p95/p99 (over all attempts, failed ones included) against the SLO.

    Fewer than `min_samples` samples never hold: no evidence is not steady state.
    """
    total = len(samples)
    good = sum(1 for s in samples if s.ok)
    latencies = [s.latency for s in samples]
    p95, p99 = percentile(latencies, 95), percentile(latencies, 99)
    ratio = good / total if total else None
    reasons: list[str] = []
    if total < max(1, min_samples):
        reasons.append(f"only {total} samples, need at least {max(1, min_samples)}")
    if total and not _meets(good, total, _exact(slo.success)):
        reasons.append(
            f"success {good}/{total} = {good / total:.2%} < SLO {slo.success:.2%}"
            f" ({total - good} attempts failed)"
        )
    for reason in (_latency_reason("p95", p95, slo.p95), _latency_reason("p99", p99, slo.p99)):
        if reason:
            reasons.append(reason)
    return SloVerdict(not reasons, ratio, p95, p99, total, tuple(reasons))


def _criteria(slo: SloLike) -> list[tuple[Fraction, Callable[[Sample], bool]]]:
    """The SLO as "at least ratio r of samples are good" rules (a percentile is such a rule)."""
    rules: list[tuple[Fraction, Callable[[Sample], bool]]] = [(_exact(slo.success), _is_ok)]
    for q, target in ((95, slo.p95), (99, slo.p99)):
        if target is not None:
            rules.append((Fraction(q, 100), lambda s, limit=target: s.latency <= limit))
    return rules


def _is_ok(sample: Sample) -> bool:
    return sample.ok


def recovery_index(samples: Sequence[Sample], slo: SloLike, *, hold: int) -> int | None:
    """Index of the earliest sample from which the journey is recovered, or None.

    `samples` must be sorted by t. Index i is a recovery point when
      1. samples[i : i + hold] are all ok (`hold` consecutive successes), and
      2. for every later j >= i + hold - 1, samples[i : j + 1] meets the SLO: success ratio and
         each latency percentile (nearest-rank) evaluated on the running window from i.
    So a relapse right after an apparent recovery moves the point past the relapse, while a
    sporadic failure the SLO allows (e.g. 1 in 200 at 99 %) long after it does not.
    Each rule "good/n >= a/b" is sum(b*good - a) >= 0; with prefix sums W this is
    W[k] >= W[i] for all k >= i + hold, checked in O(n) with suffix minima.
    """
    if hold < 1:
        raise ValueError(f"hold must be at least 1 sample, got {hold!r}")
    n = len(samples)
    valid = [False] * n
    run = 0
    for i in range(n - 1, -1, -1):
        run = run + 1 if samples[i].ok else 0
        valid[i] = run >= hold
    for ratio, good in _criteria(slo):
        prefix = [0] * (n + 1)
        for k, sample in enumerate(samples):
            prefix[k + 1] = prefix[k] + ratio.denominator * good(sample) - ratio.numerator
        suffix_min = prefix[:]
        for k in range(n - 1, -1, -1):
            suffix_min[k] = min(prefix[k], suffix_min[k + 1])
        for i in range(n - hold + 1):
            valid[i] = valid[i] and suffix_min[i + hold] >= prefix[i]
    return next((i for i, ok in enumerate(valid) if ok), None)


def _by_time(samples: Iterable[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.t, s.customer))


def steady_verdict(
    samples: Iterable[Sample], slo: SloLike, *, hold: int, min_samples: int
) -> SloVerdict:
    """Steady state: a recovery point exists and at least `min_samples` samples follow it.

    The verdict's numbers describe the samples from the recovery point on (or all of them when
    there is none), so a past incident does not hide that the journey is healthy now.
    """
    ordered = _by_time(samples)
    index = recovery_index(ordered, slo, hold=hold)
    if index is not None:
        return slo_holds(ordered[index:], slo, min_samples=min_samples)
    overall = slo_holds(ordered, slo, min_samples=min_samples)
    missing = (
        f"no {hold} consecutive successes followed by samples that keep meeting the SLO"
        " (probe longer, or check the service)"
    )
    return replace(overall, holds=False, reasons=(*overall.reasons, missing))


def time_to_recover(
    samples: Iterable[Sample], revert_at: float, slo: SloLike, *, hold: int | None = None
) -> float | None:
    """Seconds from revert until the journey is recovered (see recovery_index), None if never.

    Only samples with t >= revert_at are candidates; TTR is the recovery sample's t - revert_at.
    It is 0.0 when already healthy at revert: the last sample before revert was ok (and within the
    latency targets) and the first one after it is already a recovery point. `hold` defaults to
    the number of distinct customers sampled after revert (one round of customers). Pass one
    journey's samples, from at least the fault start. Resolution: one probe interval / customers
    (customers are staggered).
    """
    ordered = _by_time(samples)
    before = [s for s in ordered if s.t < revert_at]
    after = ordered[len(before) :]
    if not after:
        return None
    needed = hold if hold is not None else len({s.customer for s in after})
    index = recovery_index(after, slo, hold=needed)
    if index is None:
        return None
    if index == 0 and (not before or all(good(before[-1]) for _, good in _criteria(slo))):
        return 0.0
    return after[index].t - revert_at


@dataclass(frozen=True, slots=True)
class Impact:
    """What customers of one journey experienced during one fault window."""

    journey: str
    samples: int
    errors: int
    error_rate: float
    p50: float | None
    p95: float | None
    p99: float | None
    customers: int
    customers_affected: int
    ttd: float | None
    ttr: float | None
    slo_held: bool
    error_kinds: Mapping[str, int]
    slo_reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """Plain JSON types, seconds as floats, for the journal and reporters."""
        return {
            "journey": self.journey,
            "samples": self.samples,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
            "customers": self.customers,
            "customers_affected": self.customers_affected,
            "ttd": self.ttd,
            "ttr": self.ttr,
            "slo_held": self.slo_held,
            "error_kinds": dict(sorted(self.error_kinds.items())),
            "slo_reasons": list(self.slo_reasons),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Impact:
        """The inverse of to_json (journals, records sent home by pytest-xdist workers)."""
        kinds = dict(data.get("error_kinds") or {})
        return cls(
            **{**data, "error_kinds": kinds, "slo_reasons": tuple(data.get("slo_reasons", ()))}
        )


def impact(
    samples: Iterable[Sample],
    window: Window,
    slo: SloLike,
    *,
    ttr: float | None,
    journey: str | None = None,
) -> Impact:
    """Impact of one journey over the attempts started inside the fault window.

    error_rate is 0.0 and percentiles None without samples; then slo_held is False (no evidence).
    TTD is fault start → the end of the first failing attempt (when a customer saw it), or None.
    `ttr` comes from time_to_recover; `journey` names it when there may be no samples.
    """
    inside = [s for s in _by_time(samples) if s in window]
    failed = [s for s in inside if not s.ok]
    latencies = [s.latency for s in inside]
    verdict = slo_holds(inside, slo)
    return Impact(
        journey=journey if journey is not None else (inside[0].journey if inside else ""),
        samples=len(inside),
        errors=len(failed),
        error_rate=len(failed) / len(inside) if inside else 0.0,
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
        p99=percentile(latencies, 99),
        customers=len({s.customer for s in inside}),
        customers_affected=len({s.customer for s in failed}),
        ttd=min(s.end for s in failed) - window.start if failed else None,
        ttr=ttr,
        slo_held=verdict.holds,
        error_kinds=dict(Counter(s.error or "unknown" for s in failed)),
        slo_reasons=verdict.reasons,
    )


def impacts(
    samples_by_journey: Mapping[str, Iterable[Sample]],
    window: Window,
    slos: Mapping[str, SloLike],
    ttrs: Mapping[str, float | None],
) -> dict[str, Impact]:
    """Impact of every journey that has an SLO; a journey missing from `ttrs` did not recover."""
    return {
        name: impact(
            samples_by_journey.get(name, ()), window, slo, ttr=ttrs.get(name), journey=name
        )
        for name, slo in slos.items()
    }


@dataclass(frozen=True, slots=True)
class SteadyState:
    """The steady-state hypothesis checked at one moment: every journey meets its SLO."""

    at: float
    verdicts: Mapping[str, SloVerdict]

    @property
    def holds(self) -> bool:
        return all(verdict.holds for verdict in self.verdicts.values())

    def explain(self) -> str:
        broken = [f"{name}: {v.explain()}" for name, v in self.verdicts.items() if not v.holds]
        return "; ".join(broken) or "steady state holds"


class Outcome(enum.Enum):
    """How one experiment ended, from the customers' point of view."""

    TOLERATED = "tolerated"
    DEGRADED = "degraded"
    NOT_RECOVERED = "not-recovered"
    BROKEN = "broken"


def classify(
    impacts: Mapping[str, Impact] | Iterable[Impact], *, recovered: bool, broken: bool = False
) -> Outcome:
    """broken (the experiment errored) > not-recovered > degraded (an SLO broke) > tolerated."""
    values = impacts.values() if isinstance(impacts, Mapping) else impacts
    if broken:
        return Outcome.BROKEN
    if not recovered:
        return Outcome.NOT_RECOVERED
    if all(measured.slo_held for measured in values):
        return Outcome.TOLERATED
    return Outcome.DEGRADED
