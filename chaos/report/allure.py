"""Allure results for failure experiments: labels, phase steps and attachments per test, session files.

allure-pytest writes the test results; we decorate each experiment's result with what a reviewer of
failure-mode coverage looks for (epic = service, feature = failure mode, story = journey, severity
from the tier), and write the session files once. Status stays allure-pytest's own rule, which is
ours too: an AssertionError (NotRecovered, ImpactExceeded, InvariantViolated) is *failed*, anything
else (SteadyStateBroken, FaultError, ...) is *broken*. Works on plain allure-commons objects, so the
pytest wiring stays in chaos/plugin.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.impact import Outcome
from chaos.report.plots import timeline_png
from chaos.report.tables import IMPACT_HEADER, impact_row, render_table
from chaos.units import format_duration

# Allure severities by service tier (1 = business critical ... 4 = nice to have).
SEVERITY_BY_TIER = {1: "critical", 2: "normal", 3: "minor", 4: "trivial"}
OUTCOME_PREFIX = "chaos outcome:"  # first line of every experiment's status message

# The outcome decides the category whatever the status: a degraded experiment may pass (no
# expectation) or fail (expect() exceeded); Allure categorises passed results too.
CATEGORY_STATUSES = ("passed", "failed", "broken")


def fault_title(kind: str, target: str, params: Mapping[str, Any]) -> str:
    """'latency 800ms jitter=100 on orders -> payments': the fault as people say it."""
    shown = [f"{value:g}ms" if key == "ms" else f"{key}={value}" for key, value in params.items()]
    return " ".join([kind, *shown, "on", target])


def step_title(name: str, detail: str) -> str:
    """One name for a phase in Allure steps and in the live terminal lines: 'inject latency 800ms'."""
    return f"{name} {detail}".strip()


@dataclass(frozen=True)
class Attachment:
    """One file attached to a test result."""

    name: str
    body: bytes | str
    mime: str
    extension: str


@dataclass(frozen=True)
class Step:
    """One experiment phase as an Allure step, with wall-clock start and stop in milliseconds."""

    title: str
    start_ms: int
    stop_ms: int
    status: str  # passed, failed or broken


@dataclass(frozen=True)
class Decoration:
    """Everything we add to one experiment's Allure test result."""

    labels: tuple[tuple[str, str], ...]
    steps: tuple[Step, ...]
    attachments: tuple[Attachment, ...]
    message: str  # the outcome line, prepended to the status message


def decoration(entry: Mapping[str, Any]) -> Decoration:
    """Labels, steps and attachments for one journal entry (`ExperimentRecord.to_json()`)."""
    return Decoration(
        labels=tuple(labels(entry)),
        steps=tuple(steps(entry)),
        attachments=tuple(attachments(entry)),
        message=outcome_line(entry),
    )


def labels(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """epic = service, feature = failure mode, story = journey, severity, tag per fault kind."""
    services = list(entry.get("services") or [])
    facts = (entry.get("extra") or {}).get("services") or {}
    tiers = {name: f["tier"] for name, f in facts.items() if f.get("tier") is not None}
    found: list[tuple[str, str]] = [("epic", s) for s in services]
    if entry.get("failure_mode"):
        found.append(("feature", entry["failure_mode"]))
    found += [("story", journey) for journey in sorted(entry.get("impact") or {})]
    known = [tiers[s] for s in services if s in tiers]
    if known:
        found.append(("severity", SEVERITY_BY_TIER.get(min(known), "normal")))
    kinds = dict.fromkeys(fault["kind"] for fault in entry.get("faults") or [])
    found += [("tag", kind) for kind in kinds]
    found.append(("tag", f"outcome:{entry['outcome']}"))
    return found


def steps(entry: Mapping[str, Any]) -> list[Step]:
    """One step per recorded phase; the phase that ended the experiment carries its status."""
    started = (entry.get("extra") or {}).get("started_at")
    if started is None:
        return []
    phases = list(entry.get("phases") or [])
    failing = _failing_phase(entry, phases)
    result = []
    for index, phase in enumerate(phases):
        start = started + phase["start"]
        status = _phase_status(entry["outcome"]) if index == failing else "passed"
        result.append(
            Step(
                title=step_title(phase["name"], phase.get("detail", "")),
                start_ms=round(start * 1000),
                stop_ms=round((start + phase["seconds"]) * 1000),
                status=status,
            )
        )
    return result


def _failing_phase(entry: Mapping[str, Any], phases: Sequence[Mapping[str, Any]]) -> int | None:
    outcome = entry["outcome"]
    if outcome == Outcome.NOT_RECOVERED.value:
        recover = [i for i, p in enumerate(phases) if p["name"] == "recover"]
        return recover[-1] if recover else None
    if outcome == Outcome.BROKEN.value and phases:
        return len(phases) - 1
    return None


def _phase_status(outcome: str) -> str:
    return "broken" if outcome == Outcome.BROKEN.value else "failed"


def attachments(entry: Mapping[str, Any]) -> list[Attachment]:
    """The impact table, the timeline plot and the journal entry itself."""
    return [
        Attachment("customer impact", impact_text(entry), "text/plain", "txt"),
        Attachment("timeline", timeline_png(entry), "image/png", "png"),
        Attachment(
            "journal entry", json.dumps(entry, indent=2, sort_keys=True), "application/json", "json"
        ),
    ]


def impact_text(entry: Mapping[str, Any]) -> str:
    """The impact table of a journal entry (the same table failure messages show)."""
    from chaos.impact import Impact

    rows = []
    for name, imp in (entry.get("impact") or {}).items():
        known = {key: imp.get(key) for key in Impact.__dataclass_fields__ if key in imp}
        known["slo_reasons"] = tuple(known.get("slo_reasons") or ())
        rows.append(impact_row(name, Impact(**known)))
    if not rows:
        return "(no samples: the fault window was never opened)"
    return render_table(IMPACT_HEADER, rows)


def outcome_line(entry: Mapping[str, Any]) -> str:
    """'chaos outcome: degraded (payments, latency 800ms ..., TTR 2.30s)': what categories match."""
    where = ", ".join(entry.get("services") or []) or "no fault injected"
    parts = [where]
    if entry.get("failure_mode"):
        parts.append(entry["failure_mode"])
    if entry.get("ttr") is not None:
        parts.append(f"TTR {format_duration(entry['ttr'])}")
    return f"{OUTCOME_PREFIX} {entry['outcome']} ({'; '.join(parts)})"


def decorate_current_test(reporter: Any, entry: Mapping[str, Any]) -> bool:
    """Decorate the test result allure-pytest has open on this thread; False when there is none.

    `reporter` is allure-pytest's AllureReporter (`AllureListener.allure_logger`); the test is
    still open from setup until pytest_runtest_logfinish, after its status is known.
    """
    from allure_commons.model2 import TestResult

    test_result = reporter.get_test(None)
    if not isinstance(test_result, TestResult):
        return False
    apply(reporter, test_result, decoration(entry))
    return True


def apply(reporter: Any, test_result: Any, deco: Decoration) -> None:
    """Put a decoration on a live allure-commons TestResult through its AllureReporter."""
    from allure_commons.model2 import Label, Status, StatusDetails, TestStepResult
    from allure_commons.utils import uuid4

    test_result.labels.extend(Label(name=name, value=value) for name, value in deco.labels)
    statuses = {"passed": Status.PASSED, "failed": Status.FAILED, "broken": Status.BROKEN}
    test_result.steps.extend(
        TestStepResult(name=s.title, start=s.start_ms, stop=s.stop_ms, status=statuses[s.status])
        for s in deco.steps
    )
    for item in deco.attachments:
        reporter.attach_data(
            uuid4(),
            item.body,
            name=item.name,
            attachment_type=item.mime,
            extension=item.extension,
            parent_uuid=test_result.uuid,
        )
    details = test_result.statusDetails or StatusDetails()
    details.message = f"{deco.message}\n{details.message}" if details.message else deco.message
    test_result.statusDetails = details


# -- session files --------------------------------------------------------------------------


def categories() -> list[dict[str, Any]]:
    """Allure categories, matched on the outcome line every experiment's message starts with.

    Allure matches `messageRegex` against the whole status message with DOTALL (Java `matches`).
    """
    return [
        {
            "name": f"chaos: {outcome}",
            "matchedStatuses": list(CATEGORY_STATUSES),
            "messageRegex": f"(?s){OUTCOME_PREFIX} {outcome} .*",
        }
        for outcome in (o.value for o in Outcome)
    ]


def environment_facts(
    env: Mapping[str, str],
    *,
    run_id: str,
    seed: int,
    kind: str,
    proxy_url: str | None,
    catalog: str | None,
) -> dict[str, str]:
    """What environment.properties shows: environment kind, compose project, proxy, seed."""
    facts = {
        "chaos.run": run_id,
        "chaos.seed": str(seed),
        "chaos.environment": env.get("kind", kind),
        "chaos.proxy": env.get("proxy") or (f"toxiproxy {proxy_url}" if proxy_url else "built-in"),
        "chaos.catalog": env.get("catalog") or catalog or "-",
    }
    if env.get("project"):
        facts["chaos.compose_project"] = env["project"]
    return facts


def environment_properties(facts: Mapping[str, str]) -> str:
    """`key = value` lines (Java properties: separators and line breaks escaped)."""

    def escape(text: str) -> str:
        return (
            str(text)
            .replace("\\", "\\\\")
            .replace("\n", "\\n")
            .replace("=", "\\=")
            .replace(":", "\\:")
        )

    return "".join(f"{escape(k)} = {escape(v)}\n" for k, v in sorted(facts.items()))


def executor(environ: Mapping[str, str], *, run_id: str) -> dict[str, Any]:
    """executor.json for CI: who ran this, taken from the usual CI variables when present."""
    if environ.get("GITHUB_ACTIONS"):
        server = environ.get("GITHUB_SERVER_URL", "")
        repo = environ.get("GITHUB_REPOSITORY", "")
        run = environ.get("GITHUB_RUN_ID", "")
        url = f"{server}/{repo}/actions/runs/{run}" if server and repo and run else ""
        return _executor("github", "GitHub Actions", run, url, run_id)
    if environ.get("GITLAB_CI"):
        job = environ.get("CI_JOB_ID", "")
        return _executor("gitlab", "GitLab CI", job, environ.get("CI_JOB_URL", ""), run_id)
    if environ.get("JENKINS_URL"):
        build = environ.get("BUILD_NUMBER", "")
        return _executor("jenkins", "Jenkins", build, environ.get("BUILD_URL", ""), run_id)
    return _executor("local", "pytest-chaos (local run)", run_id, "", run_id)


def _executor(kind: str, name: str, build: str, url: str, run_id: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "buildName": f"pytest-chaos run {run_id}",
        "buildOrder": build,
        "buildUrl": url,
        "reportName": "pytest-chaos failure modes",
    }


def write_session_files(
    alluredir: Path, facts: Mapping[str, str], *, run_id: str, environ: Mapping[str, str] | None
) -> list[Path]:
    """categories.json, environment.properties and executor.json, once per session."""
    alluredir.mkdir(parents=True, exist_ok=True)
    files = {
        "categories.json": json.dumps(categories(), indent=2),
        "environment.properties": environment_properties(facts),
        "executor.json": json.dumps(
            executor(os.environ if environ is None else environ, run_id=run_id), indent=2
        ),
    }
    written = []
    for name, text in files.items():
        path = alluredir / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
