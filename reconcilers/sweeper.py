"""Revert what dead runs left behind: open ledger entries whose owner process is gone.

Used at plugin start-up and by `chaos clean`. Like Jepsen healing partitions in setup as well as in
teardown: the next run never starts on top of a previous run's faults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chaos.errors import ChaosError, EngineUnreachable, EnvironmentFailure, LedgerError
from chaos.ledger import LedgerFile, ledger_files, read_ledger
from faults.registry import run_recipe


@dataclass
class SweepReport:
    """What a sweep did: runs examined, entries reverted, and what could not be reverted."""

    runs_swept: list[str] = field(default_factory=list)
    reverted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    live_runs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        out = [f"reverted: {item}" for item in self.reverted]
        out += [f"FAILED to revert: {item}" for item in self.failed]
        out += [f"left alone (owner still running): run {run}" for run in self.live_runs]
        out += [f"skipped: {item}" for item in self.skipped]
        return out


def sweep(
    state_dir: Path, *, include_live: bool = False, docker_labels: bool = False
) -> SweepReport:
    """Revert every open entry of every run whose owner is gone (or of all runs, if include_live)."""
    report = SweepReport()
    for path in ledger_files(state_dir):
        try:
            ledger = read_ledger(path)
        except LedgerError as err:
            report.failed.append(str(err))
            continue
        if ledger.owner_alive() and not include_live:
            report.live_runs.append(ledger.run_id)
            continue
        _sweep_run(ledger, report)
    if docker_labels:
        _sweep_docker_labels(report)
    return report


def _sweep_docker_labels(report: SweepReport) -> None:
    """The backstop for lost ledgers: Docker objects labelled by runs whose owner is gone."""
    try:
        from reconcilers.docker_sweep import sweep_labelled

        report.reverted += sweep_labelled(live_run_ids=report.live_runs)
    except EngineUnreachable as err:
        report.skipped.append(f"Docker objects: {err}")
    except EnvironmentFailure as err:
        report.failed.append(str(err))


def _sweep_run(ledger: LedgerFile, report: SweepReport) -> None:
    failures = 0
    for entry in ledger.open_entries:
        label = f"run {ledger.run_id}: {entry.description}"
        try:
            run_recipe(entry.recipe)
        except (ChaosError, OSError) as err:
            failures += 1
            report.failed.append(f"{label} ({err}); recipe: {entry.recipe.to_json()}")
        else:
            report.reverted.append(label)
    report.runs_swept.append(ledger.run_id)
    if failures == 0:
        ledger.path.unlink(missing_ok=True)
