"""`chaos report`: summarise a journal, write its HTML matrix, compare the baselines of two runs.

Exit status: 0 fine, 1 regressions found by --compare (so CI can gate on it), 2 unusable input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaos.errors import ChaosError
from chaos.report.baselines import (
    DEFAULT_THRESHOLD,
    compare,
    format_figure,
    read_journal,
    regression_lines,
    run_baseline,
)
from chaos.report.tables import render_table
from chaos.units import format_duration

DEFAULT_JOURNAL = Path("chaos-results/journal.json")
THRESHOLD_HELP = (
    "relative change that counts as a regression of a steady-state figure "
    f"(default {DEFAULT_THRESHOLD}: 20 %% worse)"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chaos report",
        description="Summarise a pytest-chaos journal; write its HTML failure-mode matrix; "
        "compare the steady-state baselines of two runs.",
    )
    p.add_argument(
        "journal", type=Path, nargs="?", default=DEFAULT_JOURNAL, help="journal.json of a run"
    )
    p.add_argument("--html", type=Path, metavar="OUT", help="write the HTML report to OUT")
    p.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A", "B"),
        help="compare the baselines of run A (before) and run B (after); exit 1 on a regression",
    )
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help=THRESHOLD_HELP)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.compare:
            return _compare(*args.compare, threshold=args.threshold)
        return _summarise(args.journal, args.html, threshold=args.threshold)
    except ChaosError as err:
        print(f"chaos report: error: {err}", file=sys.stderr)
        return 2


def _summarise(path: Path, html_out: Path | None, *, threshold: float) -> int:
    data = read_journal(path)
    print(f"run {data['run_id']} (seed {data.get('seed')}): {len(data['experiments'])} experiments")
    print(render_table(HEADER, [_row(entry) for entry in data["experiments"]]))
    if html_out is not None:
        from chaos.report.html import render

        previous, note = _previous(path, data)
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(
            render(data, previous=previous, previous_note=note, threshold=threshold),
            encoding="utf-8",
        )
        print(f"html report: {html_out}")
    return 0


HEADER = ["service", "failure mode", "outcome", "worst error rate", "TTR", "experiment"]


def _row(entry: dict[str, Any]) -> list[str]:
    rates = [imp["error_rate"] for imp in entry["impact"].values()]
    return [
        ", ".join(entry["services"]) or "-",
        entry["failure_mode"] or "(no fault)",
        entry["outcome"],
        f"{max(rates):.1%}" if rates else "-",
        format_duration(entry["ttr"]),
        entry["name"],
    ]


def _previous(path: Path, data: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The run before this one, looked up in the journal's results directory."""
    from chaos.report.baselines import previous_run

    results = path.parent.parent if path.parent.name == "journals" else path.parent
    try:
        found = previous_run(results, str(data["run_id"]))
    except ChaosError as err:
        return None, f"The previous run's journal could not be read: {err}"
    return (None, "") if found is None else (found[1], "")


def _compare(before_path: Path, after_path: Path, *, threshold: float) -> int:
    before, after = read_journal(before_path), read_journal(after_path)
    old, new = run_baseline(before), run_baseline(after)
    if not set(old) & set(new):
        raise ChaosError(
            f"{before_path} and {after_path} share no journey with baseline figures: "
            "compare runs of the same catalog"
        )
    rows = [
        [
            journey,
            metric,
            format_figure(metric, old[journey].get(metric)),
            format_figure(metric, new[journey].get(metric)),
        ]
        for journey in sorted(set(old) & set(new))
        for metric in ("p50", "p95", "p99", "error_rate")
    ]
    print(f"baselines: run {before['run_id']} (A) -> run {after['run_id']} (B)")
    print(render_table(["journey", "figure", "A", "B"], rows))
    regressions = compare(old, new, threshold=threshold)
    for line in regression_lines(regressions, against=str(before["run_id"])):
        print(line)
    return 1 if regressions else 0
