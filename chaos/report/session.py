"""Session-end reports: the HTML matrix, baseline regressions, and Allure's session files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.report import allure
from chaos.report.baselines import read_journal, session_lines
from chaos.report.html import write_report

if TYPE_CHECKING:
    from chaos.session import ChaosSession


def write_session_reports(session: ChaosSession, alluredir: Path | None) -> list[str]:
    """Write what the closed session's journal feeds; return lines for the terminal summary."""
    lines: list[str] = []
    journal: dict[str, Any] = {}
    results = session.settings.results
    if session.journal_path is not None:
        journal = read_journal(session.journal_path)
        lines += session_lines(results, journal)
        lines.append(f"html report: {write_report(results, journal)}")
    if alluredir is not None:
        s = session.settings
        facts = allure.environment_facts(
            journal.get("environment") or {},
            run_id=session.run_id,
            seed=s.seed,
            kind=s.env,
            proxy_url=s.proxy_url,
            catalog=None if s.catalog is None else str(s.catalog),
        )
        allure.write_session_files(alluredir, facts, run_id=session.run_id, environ=None)
    return lines
