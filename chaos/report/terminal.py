"""The session-end summary: one row per failure mode, worst customer impact, outcome, TTR."""

from __future__ import annotations

from collections.abc import Sequence

from chaos.coverage import Coverage
from chaos.record import ExperimentRecord
from chaos.report.tables import render_table
from chaos.units import format_duration


def summary_rows(records: Sequence[ExperimentRecord]) -> list[list[str]]:
    rows = []
    for record in records:
        worst = max(record.impacts.values(), key=lambda i: i.error_rate, default=None)
        rows.append(
            [
                ", ".join(record.services) or "-",
                record.failure_mode or "(no fault)",
                record.outcome.value,
                "-" if worst is None else f"{worst.error_rate:.1%} ({worst.journey})",
                "-"
                if worst is None
                else f"{sum(i.customers_affected for i in record.impacts.values())}",
                format_duration(record.ttr),
                record.name,
            ]
        )
    return rows


HEADER = ["service", "failure mode", "outcome", "worst error rate", "affected", "TTR", "experiment"]


def summary(records: Sequence[ExperimentRecord]) -> str:
    """The failure-mode table printed at the end of the session."""
    return render_table(HEADER, summary_rows(records))


def coverage_lines(cov: Coverage | None) -> list[str]:
    """One line of coverage, then one line per required mode no experiment covered."""
    if cov is None:
        return []
    total = len(cov.covered) + len(cov.missing)
    lines = [f"failure-mode coverage: {len(cov.covered)}/{total} required modes ({cov.ratio:.0%})"]
    lines += [f"  missing: tier {m.tier} {m.service}: {m.kind} {m.target}" for m in cov.missing]
    return lines
