"""Run baselines: medians of the steady-state figures, regressions beyond a threshold and a floor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaos.errors import ChaosError
from chaos.report.baselines import (
    Figures,
    compare,
    entry_figures,
    read_journal,
    regression_lines,
    run_baseline,
    session_lines,
)


def entry(name: str = "t", **baseline: dict[str, Any]) -> dict[str, Any]:
    return {
        "test_id": name,
        "name": name,
        "failure_mode": "latency a -> b",
        "outcome": "tolerated",
        "services": ["b"],
        "faults": [{"kind": "latency", "target": "a -> b", "params": {"ms": 800}}],
        "impact": {"checkout": {"error_rate": 0.0, "ttr": 0.1, "slo_held": True}},
        "baseline": baseline,
        "phases": [{"name": "baseline", "start": 0.0, "seconds": 1.0}],
        "ttr": 0.1,
    }


def journal(run_id: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": "pytest-chaos/journal",
        "version": 1,
        "run_id": run_id,
        "experiments": list(entries),
    }


def figures(p95: float, error_rate: float = 0.0, p50: float = 0.01) -> dict[str, Any]:
    return {"p50": p50, "p95": p95, "p99": p95 * 2, "error_rate": error_rate, "samples": 40}


def test_run_baseline_is_the_median_per_journey() -> None:
    run = journal(
        "r1",
        entry(checkout=figures(0.010)),
        entry(checkout=figures(0.030)),
        entry(checkout=figures(0.500)),  # one noisy experiment does not move the median much
    )
    base = run_baseline(run)
    assert base["checkout"].p95 == 0.030
    assert base["checkout"].samples == 120


def test_old_entries_without_p50_derive_the_error_rate_from_the_success_ratio() -> None:
    old = entry_figures({"holds": True, "success_ratio": 0.98, "p95": 0.02, "samples": 9})
    assert old.p50 is None and old.error_rate == pytest.approx(0.02)


def test_regressions_beyond_the_threshold_are_flagged_within_it_not() -> None:
    before = {"checkout": Figures(0.010, 0.100, 0.200, 0.00, 40)}
    slower = {"checkout": Figures(0.011, 0.125, 0.240, 0.00, 40)}  # p95 +25 %, p99 +20 %
    found = compare(before, slower, threshold=0.2)
    assert [(r.journey, r.metric) for r in found] == [("checkout", "p95")]
    assert found[0].describe() == "checkout p95: 100ms -> 125ms (+25%)"
    assert compare(before, slower, threshold=0.3) == []


def test_noise_floors_keep_tiny_absolute_changes_quiet() -> None:
    before = {"j": Figures(0.0002, 0.0004, 0.0005, 0.0, 40)}
    after = {"j": Figures(0.0004, 0.0009, 0.0012, 0.004, 40)}  # +100 % but under a ms / 0.5 pp
    assert compare(before, after) == []
    errors = compare(before, {"j": Figures(0.0002, 0.0004, 0.0005, 0.02, 40)})
    assert [(r.metric, r.describe()) for r in errors] == [
        ("error_rate", "j error_rate: 0.00% -> 2.00% (new)")
    ]


def test_a_negative_threshold_is_refused() -> None:
    with pytest.raises(ChaosError, match=r"--threshold -0\.1"):
        compare({}, {}, threshold=-0.1)


def test_regression_lines_read_as_flags() -> None:
    before = {"j": Figures(0.01, 0.1, 0.2, 0.0, 1)}
    after = {"j": Figures(0.01, 0.2, 0.2, 0.0, 1)}
    assert regression_lines(compare(before, after), against="r1") == [
        "baselines: 1 regression(s) against run r1:",
        "  REGRESSION j p95: 100ms -> 200ms (+100%)",
    ]
    assert regression_lines([], against="r1") == ["baselines: no regression against run r1"]


def write(results: Path, data: dict[str, Any]) -> Path:
    path = results / "journals" / f"{data['run_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_session_lines_compare_with_the_latest_earlier_run(tmp_path: Path) -> None:
    write(tmp_path, journal("20260101T000000-a", entry(checkout=figures(0.100))))
    write(tmp_path, journal("20260102T000000-b", entry(checkout=figures(0.050))))
    now = journal("20260103T000000-c", entry(checkout=figures(0.080)))
    write(tmp_path, now)
    lines = session_lines(tmp_path, now)
    assert lines == [
        "baselines: 2 regression(s) against run 20260102T000000-b:",
        "  REGRESSION checkout p95: 50ms -> 80ms (+60%)",
        "  REGRESSION checkout p99: 100ms -> 160ms (+60%)",
    ]
    first = journal("20260101T000000-a")
    assert session_lines(tmp_path, first)[0].startswith("baselines: first run in ")


def test_an_unreadable_previous_journal_is_named_not_fatal(tmp_path: Path) -> None:
    broken = entry(checkout=figures(0.1))
    del broken["phases"]
    write(tmp_path, journal("20260101T000000-a", broken))
    lines = session_lines(tmp_path, journal("20260102T000000-b"))
    assert "20260101T000000-a.json: field 'experiments[0].phases' is missing" in lines[0]


@pytest.mark.parametrize(
    ("mutate", "field", "problem"),
    [
        (lambda e: e.update(outcome="exploded"), "experiments[0].outcome", "'exploded' is not one"),
        (lambda e: e.update(ttr="2s"), "experiments[0].ttr", "must be int or float or null"),
        (lambda e: e["faults"][0].pop("kind"), "experiments[0].faults[0].kind", "is missing"),
        (
            lambda e: e["phases"][0].update(seconds=True),
            "experiments[0].phases[0].seconds",
            "must be",
        ),
        (lambda e: e["impact"].update(checkout=[]), "experiments[0].impact.checkout", "object"),
    ],
)
def test_read_journal_names_file_and_field(
    tmp_path: Path, mutate, field: str, problem: str
) -> None:
    bad = entry(checkout=figures(0.1))
    mutate(bad)
    path = write(tmp_path, journal("r1", bad))
    with pytest.raises(ChaosError) as err:
        read_journal(path)
    assert str(err.value).startswith(f"{path}: field '{field}' ")
    assert problem in str(err.value)
