"""Interrupting a run never leaves faults or processes behind.

pytest running an experiment (a paused service) is sent SIGINT, SIGTERM or SIGKILL at random
moments. After SIGINT/SIGTERM the run itself unwinds: nothing left, no ledger entry open. After
SIGKILL the leftovers are real (a paused, orphaned service), and `chaos clean` removes them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from chaos.ledger import ledger_files, read_ledger
from tests.integration.scripted import FIXTURES

INNER = """
import pytest
from faults.process import pause

@pytest.mark.chaos(baseline="200ms")
def test_long_pause(experiment):
    with experiment.inject(pause("svc")):
        experiment.observe("30s")
"""

RUNS = 21  # 7 of each signal
SEED = 20261123


def _processes_with(token: str) -> list[int]:
    """Live processes whose environment carries `token` (zombies have an empty environ)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if token.encode() in environ:
            found.append(int(entry))
    return found


def _open_entries(state: Path) -> list[str]:
    return [e.description for p in ledger_files(state) for e in read_ledger(p).open_entries]


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _start_inner_run(
    tmp_path: Path, state: Path, token: str, output: int
) -> subprocess.Popen[bytes]:
    """pytest running INNER in a subprocess; its services inherit `token` in their environment."""
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {**os.environ, "CHAOS_TEST_TOKEN": token, "PYTHONPATH": str(Path.cwd())}
    command = [
        *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
        str(tmp_path / "test_inner.py"),
        f"--chaos-catalog={FIXTURES / 'groundtruth' / 'chaos.yaml'}",
        f"--chaos-state-dir={state}",
        f"--chaos-results={tmp_path / 'results'}",
        f"--rootdir={tmp_path}",
    ]
    return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT)


def _chaos_clean(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaos", "clean", f"--state-dir={state}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_interrupted_runs_leave_nothing_behind(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    plan = [
        (sig, rng.uniform(0.3, 3.0))
        for sig in [signal.SIGINT, signal.SIGTERM, signal.SIGKILL] * (RUNS // 3)
    ]
    rng.shuffle(plan)
    for number, (sig, delay) in enumerate(plan):
        token = f"chaos-interrupt-{uuid.uuid4().hex}"
        state = tmp_path / f"state{number}"
        proc = _start_inner_run(tmp_path, state, token, subprocess.PIPE)
        time.sleep(delay)
        proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
        where = f"run {number}: {sig.name} after {delay:.2f}s\n{output[-3000:]}"
        if sig is signal.SIGKILL:
            assert _chaos_clean(state).returncode == 0, where
        assert _wait_until(lambda tag=token: not _processes_with(tag), 10), (
            f"processes left after {where}"
        )
        assert _open_entries(state) == [], f"ledger entries left open after {where}"
        if sig is not signal.SIGKILL:
            assert proc.returncode != 0, where


@pytest.mark.slow
def test_chaos_clean_restores_a_paused_orphan(tmp_path: Path) -> None:
    """The SIGKILL case in detail: the service is paused when pytest dies; clean removes it."""
    token = f"chaos-interrupt-{uuid.uuid4().hex}"
    state = tmp_path / "state"
    proc = _start_inner_run(tmp_path, state, token, subprocess.DEVNULL)

    def paused() -> bool:
        return any(
            "State:\tT" in Path(f"/proc/{pid}/status").read_text()
            for pid in _processes_with(token)
            if pid != proc.pid and Path(f"/proc/{pid}/status").exists()
        )

    try:
        assert _wait_until(paused, 30), "the experiment never paused the service"
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert _processes_with(token), "SIGKILL leaves the orphaned service behind (that is the point)"
    assert any("pause" in d for d in _open_entries(state))
    done = _chaos_clean(state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reverted: run" in done.stdout and "pause" in done.stdout
    assert _wait_until(lambda: not _processes_with(token), 10)
    assert _open_entries(state) == [] and not list(ledger_files(state))
    again = _chaos_clean(state)
    assert again.returncode == 0 and "nothing to clean" in again.stdout
