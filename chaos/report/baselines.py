"""Steady-state baselines kept run over run, so a slower or flakier system is flagged early.

Every experiment's journal entry holds the steady-state figures measured before its fault
(`baseline`: per journey p50/p95/p99 and error rate). A run's baseline is the median of those
figures per journey; two runs are compared figure by figure against a relative threshold. Also reads
journals from disk strictly (an old or hand-edited journal fails naming the file and the field),
since comparing runs is where journals of other versions turn up.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.errors import ChaosError
from chaos.impact import Outcome
from chaos.report.journal import load_journal
from chaos.units import format_duration

DEFAULT_THRESHOLD = 0.2  # a figure 20 % worse than the previous run's is a regression
MIN_LATENCY_DELTA = 0.002  # s: smaller latency changes are noise on any machine
MIN_ERROR_DELTA = 0.005  # half a percentage point of errors
METRICS = ("p50", "p95", "p99", "error_rate")


@dataclass(frozen=True)
class Figures:
    """Steady-state figures of one journey: latencies in seconds, error rate 0..1."""

    p50: float | None
    p95: float | None
    p99: float | None
    error_rate: float | None
    samples: int

    def get(self, metric: str) -> float | None:
        return getattr(self, metric)


@dataclass(frozen=True)
class Regression:
    """One figure that got worse beyond the threshold between two runs."""

    journey: str
    metric: str
    before: float
    after: float

    @property
    def change(self) -> float:
        """Relative change (+0.5 = 50 % worse); inf when the figure was zero before."""
        return (self.after - self.before) / self.before if self.before else float("inf")

    def describe(self) -> str:
        change = "new" if self.change == float("inf") else f"+{self.change:.0%}"
        before, after = (format_figure(self.metric, v) for v in (self.before, self.after))
        return f"{self.journey} {self.metric}: {before} -> {after} ({change})"


def format_figure(metric: str, value: float | None) -> str:
    """An error rate as a percentage, a latency as a duration, '-' when unknown."""
    if value is None:
        return "-"
    return f"{value:.2%}" if metric == "error_rate" else format_duration(value)


def entry_figures(figures: Mapping[str, Any]) -> Figures:
    """One journal entry's baseline of one journey (journals before p50 was kept have none)."""
    ratio = figures.get("success_ratio")
    error_rate = figures.get("error_rate")
    if error_rate is None and ratio is not None:
        error_rate = 1.0 - ratio
    return Figures(
        p50=figures.get("p50"),
        p95=figures.get("p95"),
        p99=figures.get("p99"),
        error_rate=error_rate,
        samples=int(figures.get("samples") or 0),
    )


def run_baseline(journal: Mapping[str, Any]) -> dict[str, Figures]:
    """Per journey, the median of every experiment's steady-state figures in one run."""
    per_journey: dict[str, list[Figures]] = {}
    for entry in journal["experiments"]:
        for journey, figures in (entry.get("baseline") or {}).items():
            per_journey.setdefault(journey, []).append(entry_figures(figures))
    return {name: _median(items) for name, items in sorted(per_journey.items())}


def _median(items: Sequence[Figures]) -> Figures:
    def med(metric: str) -> float | None:
        values = [v for item in items if (v := item.get(metric)) is not None]
        return statistics.median(values) if values else None

    return Figures(
        p50=med("p50"),
        p95=med("p95"),
        p99=med("p99"),
        error_rate=med("error_rate"),
        samples=sum(item.samples for item in items),
    )


def compare(
    before: Mapping[str, Figures],
    after: Mapping[str, Figures],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Regression]:
    """Figures worse by more than `threshold` (relative) and by more than the noise floor."""
    if threshold < 0:
        raise ChaosError(f"--threshold {threshold}: must be >= 0 (0.2 means 20 % worse)")
    found = []
    for journey in sorted(set(before) & set(after)):
        for metric in METRICS:
            old, new = before[journey].get(metric), after[journey].get(metric)
            if old is None or new is None:
                continue
            floor = MIN_ERROR_DELTA if metric == "error_rate" else MIN_LATENCY_DELTA
            if new - old > floor and new > old * (1 + threshold):
                found.append(Regression(journey, metric, old, new))
    return found


def regression_lines(regressions: Sequence[Regression], *, against: str) -> list[str]:
    """Terminal lines: one per regression, or one saying the baselines held."""
    if not regressions:
        return [f"baselines: no regression against run {against}"]
    lines = [f"baselines: {len(regressions)} regression(s) against run {against}:"]
    return lines + [f"  REGRESSION {r.describe()}" for r in regressions]


# -- strict reading of journals from disk ---------------------------------------------------

_NUMBER = (int, float)
_OPTIONAL_NUMBER = (int, float, type(None))
ENTRY_FIELDS: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("test_id", (str,)),
    ("name", (str,)),
    ("failure_mode", (str,)),
    ("outcome", (str,)),
    ("services", (list,)),
    ("faults", (list,)),
    ("impact", (dict,)),
    ("baseline", (dict,)),
    ("phases", (list,)),
    ("ttr", _OPTIONAL_NUMBER),
)
FAULT_FIELDS = (("kind", (str,)), ("target", (str,)), ("params", (dict,)))
PHASE_FIELDS = (("name", (str,)), ("start", _NUMBER), ("seconds", _NUMBER))
IMPACT_FIELDS = (("error_rate", _NUMBER), ("ttr", _OPTIONAL_NUMBER), ("slo_held", (bool,)))


def read_journal(path: Path) -> dict[str, Any]:
    """load_journal plus a check of every experiment field the reports read."""
    data = load_journal(path)
    for index, entry in enumerate(data["experiments"]):
        check_entry(entry, f"experiments[{index}]", path)
    return data


def check_entry(entry: Any, where: str, path: Path) -> None:
    """Raise ChaosError naming file and field when a journal entry lacks what reports read."""
    _check(entry, ENTRY_FIELDS, where, path)
    outcomes = [o.value for o in Outcome]
    if entry["outcome"] not in outcomes:
        raise _bad(path, f"{where}.outcome", f"{entry['outcome']!r} is not one of {outcomes}")
    for i, fault in enumerate(entry["faults"]):
        _check(fault, FAULT_FIELDS, f"{where}.faults[{i}]", path)
    for i, phase in enumerate(entry["phases"]):
        _check(phase, PHASE_FIELDS, f"{where}.phases[{i}]", path)
    for journey, imp in entry["impact"].items():
        _check(imp, IMPACT_FIELDS, f"{where}.impact.{journey}", path)
    for journey, figures in entry["baseline"].items():
        if not isinstance(figures, dict):
            raise _bad(path, f"{where}.baseline.{journey}", "must be an object")


def _check(
    value: Any, fields: Sequence[tuple[str, tuple[type, ...]]], where: str, path: Path
) -> None:
    if not isinstance(value, dict):
        raise _bad(path, where, f"must be an object, got {type(value).__name__}")
    for key, kinds in fields:
        if key not in value:
            raise _bad(path, f"{where}.{key}", "is missing (a journal of an older pytest-chaos?)")
        if not isinstance(value[key], kinds) or (
            isinstance(value[key], bool) and bool not in kinds
        ):
            expected = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise _bad(
                path, f"{where}.{key}", f"must be {expected}, got {type(value[key]).__name__}"
            )


def _bad(path: Path, field: str, problem: str) -> ChaosError:
    return ChaosError(f"{path}: field '{field}' {problem}; regenerate it with this pytest-chaos")


def previous_run(results_dir: Path, run_id: str) -> tuple[Path, dict[str, Any]] | None:
    """The latest earlier journal in `results_dir`, or None; an unreadable one is an error."""
    from chaos.report.journal import previous_journal

    path = previous_journal(results_dir, run_id)
    return None if path is None else (path, read_journal(path))


def session_lines(
    results_dir: Path, journal: Mapping[str, Any], *, threshold: float = DEFAULT_THRESHOLD
) -> list[str]:
    """The session summary's baseline lines: regressions against the previous run, if any."""
    try:
        found = previous_run(results_dir, str(journal["run_id"]))
    except ChaosError as err:
        return [f"baselines: previous run not compared: {err}"]
    if found is None:
        return [f"baselines: first run in {results_dir}; later runs are compared with it"]
    _path, previous = found
    regressions = compare(run_baseline(previous), run_baseline(journal), threshold=threshold)
    return regression_lines(regressions, against=str(previous["run_id"]))
