"""`chaos report`: summary, --html, --compare, and clear errors for malformed or old journals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaos.cli import main as chaos_main
from chaos.report.cli import main
from tests.unit.test_baselines import entry, figures, journal


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def degraded(name: str, p95: float) -> dict[str, Any]:
    found = entry(name, checkout=figures(p95))
    found.update(outcome="degraded", extra={"services": {"b": {"tier": 1, "restore_order": 2}}})
    found["impact"]["checkout"].update(error_rate=0.25, slo_held=False, samples=40)
    return found


def test_summary_prints_one_row_per_experiment(tmp_path: Path, capsys) -> None:
    path = write(tmp_path / "journal.json", journal("r1", degraded("t_slow", 0.01)))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "run r1 (seed None): 1 experiments" in out
    assert "b        latency a -> b  degraded  25.0%" in out


def test_html_is_written_and_compared_with_the_previous_run(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    write(results / "journals" / "r1.json", journal("r1", degraded("t_slow", 0.010)))
    current = journal("r2", degraded("t_slow", 0.050))
    write(results / "journals" / "r2.json", current)
    path = write(results / "journal.json", current)
    out = tmp_path / "out" / "report.html"
    assert main([str(path), "--html", str(out)]) == 0
    page = out.read_text()
    assert 'data-service="b" data-kind="latency" data-outcome="degraded"' in page
    assert "errors 25.0% · TTR 100ms" in page
    assert "Compared with the previous run (r1)" in page
    assert "checkout p95: 10ms -&gt; 50ms (+400%)" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    assert f"html report: {out}" in capsys.readouterr().out


def test_compare_exits_1_on_a_regression_and_0_without(tmp_path: Path, capsys) -> None:
    a = write(tmp_path / "a.json", journal("ra", degraded("t", 0.010)))
    b = write(tmp_path / "b.json", journal("rb", degraded("t", 0.013)))
    assert main(["--compare", str(a), str(b)]) == 1  # +30 % > 20 %
    out = capsys.readouterr().out
    assert "REGRESSION checkout p95: 10ms -> 13ms (+30%)" in out
    assert main(["--compare", str(a), str(b), "--threshold", "0.5"]) == 0
    assert "no regression against run ra" in capsys.readouterr().out


def test_compare_of_unrelated_runs_is_an_error(tmp_path: Path, capsys) -> None:
    a = write(tmp_path / "a.json", journal("ra", entry(checkout=figures(0.01))))
    b = write(tmp_path / "b.json", journal("rb", entry(login=figures(0.01))))
    assert main(["--compare", str(a), str(b)]) == 2
    assert "share no journey" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"schema": "pytest-chaos/journal",', "journal.json:1: not JSON"),
        ("[]", "journal.json: a journal is a JSON object, got list"),
        (
            {"schema": "pytest-chaos/journal", "version": 0, "run_id": "r", "experiments": []},
            "journal.json: field 'version': schema 'pytest-chaos/journal' v0 is not supported",
        ),
        ({"schema": "pytest-chaos/journal", "version": 1, "run_id": "r"}, "field 'experiments'"),
    ],
)
def test_malformed_or_old_schema_journals_name_file_and_field(
    tmp_path: Path, capsys, content: Any, expected: str
) -> None:
    path = write(tmp_path / "journal.json", content)
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"chaos report: error: {tmp_path}/")
    assert expected in err


def test_an_entry_of_an_older_version_names_the_missing_field(tmp_path: Path, capsys) -> None:
    old = entry(checkout=figures(0.01))
    del old["failure_mode"]  # journals before failure_mode existed
    path = write(tmp_path / "journal.json", journal("r1", old))
    assert chaos_main(["report", str(path), "--html", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: field 'experiments[0].failure_mode' is missing" in err
    assert not (tmp_path / "r.html").exists()


def test_a_missing_journal_is_named(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "nope.json")]) == 2
    assert f"{tmp_path / 'nope.json'}: cannot read journal" in capsys.readouterr().err
