"""The pytest plugin end to end, in-process with pytester, against real local processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.scripted import FIXTURES

CATALOG = FIXTURES / "groundtruth" / "chaos.yaml"

OUTCOMES = '''
import pytest
from dataclasses import dataclass
from typing import ClassVar
from faults.base import Injection, Recipe
from tests.integration.scripted import post_script, scripted


@pytest.fixture(autouse=True)
def healthy(chaos_environment):
    post_script(chaos_environment.endpoint("svc"), {})


@dataclass(frozen=True)
class Sticky:
    """A fault whose revert forgets to heal the service: the system never reconciles."""
    kind: ClassVar[str] = "sticky"
    target: str
    def params(self):
        return {}
    def plan(self, env):
        base = env.endpoint(self.target)
        return Injection("sticky svc", Recipe("none"), lambda: post_script(base, {"fail_ratio": 1.0}),
                         lambda: None)


@pytest.mark.chaos(baseline="300ms")
def test_tolerated(experiment):
    with experiment.inject(scripted("svc", fail_customers=[])):
        experiment.observe("300ms")
    experiment.recover()
    experiment.expect("work", max_error_rate=0.0)


@pytest.mark.chaos(rto="3s", baseline="300ms")
def test_degraded(experiment):
    with experiment.inject(scripted("svc", fail_ratio=0.5)):
        experiment.observe("600ms")


@pytest.mark.chaos(rto="1s", baseline="300ms")
def test_not_recovered(experiment):
    with experiment.inject(Sticky("svc")):
        experiment.observe("300ms")


@pytest.fixture
def failing_before(chaos_environment, healthy):
    post_script(chaos_environment.endpoint("svc"), {"fail_ratio": 1.0})


@pytest.mark.chaos(baseline="300ms")
def test_broken(failing_before, experiment):
    raise AssertionError("never reached: the baseline fails during setup")


@pytest.mark.chaos(baseline="300ms")
def test_expectation_fails_with_the_measurements(experiment):
    with experiment.inject(scripted("svc", fail_ratio=0.5)):
        experiment.observe("500ms")
    experiment.recover()
    experiment.expect("work", max_error_rate=0.1)
'''


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        f"--chaos-catalog={CATALOG}",
        f"--chaos-state-dir={tmp_path / 'state'}",
        f"--chaos-results={tmp_path / 'results'}",
        "--chaos-seed=7",
        "-p",
        "no:cacheprovider",
        *extra,
    ]


def test_marker_and_options_are_documented(pytester: pytest.Pytester) -> None:
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(
        ["@pytest.mark.chaos(rto=None, baseline=None): a failure experiment*"]
    )
    helptext = pytester.runpytest("--help")
    helptext.stdout.fnmatch_lines(
        ["failure-mode experiments (pytest-chaos):", "*--chaos-catalog=*"]
    )
    for flag in ("--chaos-env", "--chaos-seed", "--chaos-results", "--chaos-proxy-url"):
        assert flag in helptext.stdout.str()


def test_each_outcome_lands_in_the_journal_and_the_summary(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_outcomes=OUTCOMES)
    result = pytester.runpytest(*_args(tmp_path, "-v"))
    result.assert_outcomes(passed=2, failed=2, errors=1)
    out = result.stdout.str()
    assert "NotRecovered" in out and "did not return within the RTO of 1.00s" in out
    assert "SteadyStateBroken" in out and "steady state does not hold before any fault" in out
    assert (
        "error rate" in out and "> 10.0%" in out and "affected" in out
    )  # expect() shows the table
    result.stdout.fnmatch_lines(
        ["*[[]baseline 300ms[]]*", "*[[]inject scripted * on svc[]]*", "*[[]recover rto*"]
    )
    result.stdout.fnmatch_lines(
        ["*chaos: failure modes and customer impact*", "*journal: *journal.json"]
    )

    journal = json.loads((tmp_path / "results" / "journal.json").read_text())
    assert journal["schema"] == "pytest-chaos/journal" and journal["version"] == 1
    assert journal["seed"] == 7
    outcomes = {e["test_id"].split("::")[-1]: e["outcome"] for e in journal["experiments"]}
    assert outcomes == {
        "test_tolerated": "tolerated",
        "test_degraded": "degraded",
        "test_not_recovered": "not-recovered",
        "test_broken": "broken",
        "test_expectation_fails_with_the_measurements": "degraded",
    }
    degraded = next(e for e in journal["experiments"] if e["test_id"].endswith("test_degraded"))
    assert degraded["faults"][0]["kind"] == "scripted"
    assert degraded["impact"]["work"]["error_rate"] > 0.3
    assert degraded["ttr"] is not None and [p["name"] for p in degraded["phases"]][:2] == [
        "baseline",
        "inject",
    ]
    assert not list((tmp_path / "state" / "ledger").glob("*.jsonl")), (
        "ledger closed: nothing left open"
    )


def test_a_malformed_catalog_is_reported_with_file_line_and_field(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    bad = tmp_path / "chaos.yaml"
    bad.write_text(CATALOG.read_text().replace("rto: 5s", "rto: 5 parsecs"))
    (tmp_path / "local.yaml").write_text((FIXTURES / "groundtruth" / "local.yaml").read_text())
    pytester.makepyfile(
        """
        def test_uses_experiment(experiment):
            raise AssertionError("never reached: the catalog is checked first")
        """
    )
    result = pytester.runpytest(*_args(tmp_path), f"--chaos-catalog={bad}")
    result.assert_outcomes(errors=1)
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "parsecs" in text)
    result.stdout.fnmatch_lines([f"*CatalogError: {bad}:{line}: services.svc.rto: *parsecs*"])
    assert "never reached" not in result.stdout.str()


def test_bad_marker_arguments_are_a_clear_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.chaos(rtoo="5s")
        def test_typo(experiment):
            pass
        """
    )
    result = pytester.runpytest(*_args(tmp_path))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.chaos got unknown argument(s) rtoo; valid: rto, baseline*"]
    )


def test_no_catalog_is_a_clear_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile("def test_x(experiment):\n    pass\n")
    args = [a for a in _args(tmp_path) if not a.startswith("--chaos-catalog")]
    result = pytester.runpytest(*args)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no catalog: pass --chaos-catalog path/to/chaos.yaml*"])


def test_chaos_matrix_parametrizes_the_required_modes(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.chaos_matrix(tier=1)
        def test_mode(failure_mode):
            assert (failure_mode.kind, failure_mode.target) == ("stop", "svc")
            assert failure_mode.fault().kind == "stop"
        """
    )
    result = pytester.runpytest(*_args(tmp_path), "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_mode[[]stop-svc[]] PASSED*"])


def test_chaos_matrix_with_an_unknown_kind_is_a_clear_error(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.chaos_matrix(kinds=["teleport"])
        def test_mode(failure_mode):
            pass
        """
    )
    result = pytester.runpytest(*_args(tmp_path))
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*chaos_matrix(kinds=...): unknown fault kind(s) teleport; valid: bandwidth, disconnect*"]
    )


LINELESS_INTERRUPT = """
import sys
import types


def test_interrupted_where_no_line_is_known():
    # As when a signal lands on a CPython 3.11 instruction without a line number.
    lineless = types.TracebackType(None, sys._getframe(), 10**6, -1)
    assert lineless.tb_lineno is None
    raise KeyboardInterrupt("stop").with_traceback(lineless)
"""


def test_ctrl_c_without_a_source_line_still_ends_as_interrupted(
    pytester: pytest.Pytester,
) -> None:
    """pytest itself would crash rendering such an interrupt and exit 1; the run must say 2."""
    pytester.makepyfile(test_lineless=LINELESS_INTERRUPT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert "TypeError" not in result.stdout.str() + result.stderr.str()
