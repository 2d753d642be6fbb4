"""Allure results of a real run with one experiment of each outcome, read back from allure-results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.test_plugin import CATALOG, OUTCOMES

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {  # test name: (allure status, chaos outcome)
    "test_tolerated": ("passed", "tolerated"),
    "test_degraded": ("passed", "degraded"),
    "test_not_recovered": ("failed", "not-recovered"),
    "test_broken": ("broken", "broken"),
    "test_expectation_fails_with_the_measurements": ("failed", "degraded"),
}


def run_outcomes(workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the outcomes suite in a fresh interpreter against the ground-truth catalog."""
    (workdir / "test_outcomes.py").write_text(OUTCOMES)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in [k for k in env if k.startswith(("GITHUB_", "GITLAB", "JENKINS"))]:
        env.pop(name)  # executor.json must describe a local run here
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "test_outcomes.py",
            f"--chaos-catalog={CATALOG}",
            f"--chaos-state-dir={workdir / 'state'}",
            f"--chaos-results={workdir / 'results'}",
            "--chaos-seed=7",
            "-p",
            "no:cacheprovider",
            "-v",
            *extra,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def allure_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("allure-run")
    run = run_outcomes(workdir, f"--alluredir={workdir / 'allure'}")
    assert run.returncode == 1, run.stdout + run.stderr  # 2 failed, 1 error: findings, not a crash
    return workdir / "allure"


@pytest.fixture(scope="module")
def results(allure_dir: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in allure_dir.glob("*-result.json"):
        data = json.loads(path.read_text())
        found[data["name"]] = data
    assert sorted(found) == sorted(EXPECTED)
    return found


def _labels(result: dict[str, Any], name: str) -> list[str]:
    return [label["value"] for label in result["labels"] if label["name"] == name]


def test_statuses_follow_assertion_error_failed_anything_else_broken(results) -> None:
    for name, (status, _) in EXPECTED.items():
        assert results[name]["status"] == status, name


def test_labels_name_service_failure_mode_journey_severity_and_fault_kind(results) -> None:
    for name in ("test_tolerated", "test_degraded", "test_expectation_fails_with_the_measurements"):
        result = results[name]
        assert _labels(result, "epic") == ["svc"]
        assert _labels(result, "feature") == ["scripted svc"]
        assert _labels(result, "story") == ["work"]
        assert _labels(result, "severity") == ["critical"]  # svc is tier 1
        assert "scripted" in _labels(result, "tag")
    assert _labels(results["test_not_recovered"], "feature") == ["sticky svc"]
    assert "sticky" in _labels(results["test_not_recovered"], "tag")
    broken = results["test_broken"]
    assert _labels(broken, "epic") == [] and _labels(broken, "feature") == []  # no fault injected
    for name, (_, outcome) in EXPECTED.items():
        assert f"outcome:{outcome}" in _labels(results[name], "tag")


def test_one_step_per_phase_with_real_timings(results) -> None:
    tolerated = results["test_tolerated"]["steps"]
    assert [s["name"] for s in tolerated] == [
        "baseline 300ms",
        "inject scripted fail_customers=[] on svc",
        "observe 300ms",
        "revert scripted fail_customers=[] on svc",
        "revert",
        "recover rto 5.00s",
    ]
    assert all(s["status"] == "passed" for s in tolerated)
    starts = [s["start"] for s in tolerated]
    assert starts == sorted(starts)
    durations = {s["name"]: s["stop"] - s["start"] for s in tolerated}
    assert 290 <= durations["baseline 300ms"] <= 3000
    assert 290 <= durations["observe 300ms"] <= 400  # milliseconds, measured
    recover = results["test_not_recovered"]["steps"][-1]
    assert recover["name"] == "recover rto 1.00s" and recover["status"] == "failed"
    assert recover["stop"] - recover["start"] >= 1000  # waited out the RTO
    baseline = results["test_broken"]["steps"]
    assert [(s["name"], s["status"]) for s in baseline] == [("baseline 300ms", "broken")]


def test_attachments_are_impact_table_timeline_png_and_journal_entry(results, allure_dir) -> None:
    for name, (_, outcome) in EXPECTED.items():
        attached = {a["name"]: a for a in results[name]["attachments"]}  # + allure's stdout
        ours = {
            "customer impact": "text/plain",
            "timeline": "image/png",
            "journal entry": "application/json",
        }
        assert {a: attached[a]["type"] for a in ours} == ours
        png = (allure_dir / attached["timeline"]["source"]).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
        entry = json.loads((allure_dir / attached["journal entry"]["source"]).read_text())
        assert entry["outcome"] == outcome and entry["test_id"].endswith(name)
        table = (allure_dir / attached["customer impact"]["source"]).read_text()
        if outcome == "broken":
            assert "no samples" in table
        else:
            assert table.splitlines()[0].split()[:3] == ["journey", "samples", "errors"]
            assert table.splitlines()[2].startswith("work")


def test_categories_match_each_outcome_on_our_messages(results, allure_dir) -> None:
    categories = json.loads((allure_dir / "categories.json").read_text())
    assert [c["name"] for c in categories] == [
        "chaos: tolerated",
        "chaos: degraded",
        "chaos: not-recovered",
        "chaos: broken",
    ]
    for name, (_, outcome) in EXPECTED.items():
        result = results[name]
        message = result["statusDetails"]["message"]
        matched = [  # what Allure does: the whole message, DOTALL, and the status
            c["name"]
            for c in categories
            if result["status"] in c["matchedStatuses"]
            and re.fullmatch(c["messageRegex"], message, re.DOTALL)
        ]
        assert matched == [f"chaos: {outcome}"], (name, message)
    not_recovered = results["test_not_recovered"]["statusDetails"]["message"]
    assert "NotRecovered" in not_recovered and "did not return within the RTO" in not_recovered


def test_environment_and_executor_are_written_once_at_session_end(allure_dir) -> None:
    props = dict(
        line.split(" = ", 1)
        for line in (allure_dir / "environment.properties").read_text().splitlines()
    )
    assert props["chaos.seed"] == "7"
    assert props["chaos.environment"] == "local"
    assert props["chaos.proxy"].startswith("built-in ")
    executor = json.loads((allure_dir / "executor.json").read_text())
    assert executor["type"] == "local"
    assert executor["buildName"] == f"pytest-chaos run {props['chaos.run']}"
    assert sorted(
        p.name
        for p in allure_dir.iterdir()
        if not p.name.endswith(
            (
                "-result.json",
                "-container.json",
                "-attachment.txt",
                "-attachment.png",
                "-attachment.json",
            )
        )
    ) == [
        "categories.json",
        "environment.properties",
        "executor.json",
    ]
