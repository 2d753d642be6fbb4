"""Under pytest-xdist a run still gives one journal and one set of reports with every experiment."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest

from tests.integration.scripted import FIXTURES

if os.environ.get("CI") != "true":  # CI installs the dev extras: a missing xdist must fail there
    pytest.importorskip("xdist", reason="pytest-xdist is a dev dependency: pip install -e '.[dev]'")

REPO = Path(__file__).resolve().parents[2]
TESTS = ("test_one", "test_two", "test_three", "test_four")

# The ground-truth service, but on `port: 0`: each worker's copy listens on a free port.
LOCAL_YAML = """\
version: 1
services:
  svc:
    command: [python3, {script}]
    port: {port}
    restart: on-failure
    ready_timeout: 10s
    stop_grace: 2s
"""

SUITE = """
import pytest
from tests.integration.scripted import post_script, scripted


@pytest.fixture(autouse=True)
def healthy(chaos_environment):
    post_script(chaos_environment.endpoint("svc"), {})


def _tolerated(experiment):
    with experiment.inject(scripted("svc", fail_customers=[])):
        experiment.observe("200ms")
    experiment.recover()


@pytest.mark.chaos(baseline="200ms")
def test_one(experiment):
    _tolerated(experiment)


@pytest.mark.chaos(rto="3s", baseline="200ms")
def test_two(experiment):
    with experiment.inject(scripted("svc", fail_ratio=0.5)):
        experiment.observe("400ms")


@pytest.mark.chaos(baseline="200ms")
def test_three(experiment):
    _tolerated(experiment)


@pytest.mark.chaos(baseline="200ms")
def test_four(experiment):
    _tolerated(experiment)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _catalog(tmp_path: Path, port: int = 0) -> Path:
    folder = tmp_path / "catalog"
    folder.mkdir(exist_ok=True)
    script = FIXTURES / "services" / "scripted.py"
    (folder / "local.yaml").write_text(LOCAL_YAML.format(script=script, port=port))
    catalog = folder / "chaos.yaml"
    catalog.write_text((FIXTURES / "groundtruth" / "chaos.yaml").read_text())
    return catalog


def _run(
    pytester: pytest.Pytester, tmp_path: Path, name: str, *extra: str, port: int = 0
) -> tuple[pytest.RunResult, Path]:
    out = tmp_path / name
    result = pytester.runpytest_subprocess(
        f"--chaos-catalog={_catalog(tmp_path, port)}",
        f"--chaos-state-dir={out / 'state'}",
        f"--chaos-results={out / 'results'}",
        f"--alluredir={out / 'allure'}",
        "--chaos-seed=7",
        "-p",
        "no:cacheprovider",
        "-v",
        *extra,
    )
    return result, out


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # `tests.integration.scripted`, in every worker
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def _experiments(out: Path) -> dict[str, str]:
    """test name -> outcome, from the run's one journal (and its one copy under journals/)."""
    journals = sorted((out / "results").rglob("*.json"))
    assert [p.relative_to(out / "results").parts[0] for p in journals] == [
        "journal.json",
        "journals",
    ], f"exactly one journal and its history copy, got {journals}"
    journal = json.loads((out / "results" / "journal.json").read_text())
    assert journal["seed"] == 7
    return {e["test_id"].split("::")[-1]: e["outcome"] for e in journal["experiments"]}


def _summary(result: pytest.RunResult) -> str:
    text = result.stdout.str()
    assert text.count("chaos: failure modes and customer impact") == 1, text[-3000:]
    return text.split("chaos: failure modes and customer impact", 1)[1]


def _allure_tests(out: Path) -> dict[str, set[str]]:
    """test name -> its chaos labels (feature = failure mode), from Allure's result files."""
    found: dict[str, set[str]] = {}
    for path in (out / "allure").glob("*-result.json"):
        data = json.loads(path.read_text())
        found[data["name"]] = {f"{x['name']}={x['value']}" for x in data.get("labels", [])}
    return found


def test_two_workers_give_one_journal_and_one_report_with_every_experiment(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    result, out = _run(suite, tmp_path, "parallel", "-n", "2", "--dist", "load")
    result.assert_outcomes(passed=4)
    text = result.stdout.str()
    workers = set(re.findall(r"^\[(gw\d+)\] .*PASSED", text, re.M))
    assert workers == {"gw0", "gw1"}, "the suite must really run on both workers"

    experiments = _experiments(out)
    assert set(experiments) == set(TESTS)
    assert experiments["test_two"] == "degraded"

    summary = _summary(result)
    assert all(name in summary for name in TESTS), summary
    assert "merged from 2 pytest-xdist worker(s) (gw0, gw1)" in summary
    assert "journal: " in summary and "html report: " in summary

    html = (out / "results" / "report.html").read_text()
    assert all(name in html for name in TESTS)

    allure = _allure_tests(out)
    assert set(allure) == set(TESTS)
    assert all("feature=scripted svc" in labels for labels in allure.values()), allure
    assert (out / "allure" / "environment.properties").is_file()
    assert (out / "allure" / "categories.json").is_file()

    journal = json.loads((out / "results" / "journal.json").read_text())
    workers_fact = journal["environment"].get("xdist_workers")
    assert workers_fact == "gw0, gw1", journal["environment"]
    assert f"run {journal['run_id']}," in text, "the journal's run id is the one the header shows"
    assert not list((out / "state" / "ledger").glob("*.jsonl")), "every ledger closed"


def test_the_serial_run_gives_the_same_experiments(suite: pytest.Pytester, tmp_path: Path) -> None:
    parallel, parallel_out = _run(suite, tmp_path, "parallel", "-n", "2", "--dist", "load")
    serial, serial_out = _run(suite, tmp_path, "serial", "-p", "no:xdist")
    parallel.assert_outcomes(passed=4)
    serial.assert_outcomes(passed=4)
    assert _experiments(parallel_out) == _experiments(serial_out)
    serial_allure, parallel_allure = _allure_tests(serial_out), _allure_tests(parallel_out)
    assert set(serial_allure) == set(parallel_allure) == set(TESTS)

    def rows(result: pytest.RunResult) -> list[tuple[str, ...]]:
        """(service, failure mode, outcome, experiment) of each summary row, in printed order."""
        lines = [line.split("  ") for line in _summary(result).splitlines()]
        cells = [[c.strip() for c in line if c.strip()] for line in lines]
        return [(*c[:3], c[-1]) for c in cells if c and c[-1].startswith("test_suite.py::")]

    assert rows(parallel) == rows(serial)
    assert [row[-1].split("::")[1] for row in rows(serial)] == list(TESTS)  # collection order


def test_fixed_local_ports_on_two_workers_fail_early_and_say_what_to_do(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    """A fixed port (free now, so nothing else is disturbed) would be taken by both workers' copies."""
    port = _free_port()
    result, _ = _run(suite, tmp_path, "fixed", "-n", "2", "-x", port=port)
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "*ParallelRunConflict: --chaos-env local under pytest-xdist with 2 workers*"
            f"svc port {port}*set `port: 0` for them in *local.yaml*`-n 0` or `-n 1`*"
        ]
    )
