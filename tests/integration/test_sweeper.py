"""The sweeper reverts what a dead run left on a real proxy, leaves live runs alone, and reports failures."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.ledger import Ledger, ledger_files
from faults.base import Recipe
from faults.proxy.client import ToxiproxyClient
from faults.proxy.server import ProxyServer
from reconcilers.sweeper import sweep

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def proxy() -> Iterator[ToxiproxyClient]:
    with ProxyServer(port=0) as server:
        client = ToxiproxyClient(server.api_url)
        client.create_proxy("orders--payments", upstream="127.0.0.1:9", listen="127.0.0.1:0")
        yield client


def _die_with_open_faults(state: Path, api: str) -> None:
    """A run that records and applies two faults, then is SIGKILLed before reverting them."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from chaos.ledger import Ledger
        from faults.base import Recipe
        from faults.proxy.client import ToxiproxyClient
        client = ToxiproxyClient({api!r})
        ledger = Ledger(Path({str(state)!r}), run_id="killed")
        ledger.open()
        ledger.acquire("latency", Recipe("proxy.remove_toxic",
                       {{"api": {api!r}, "proxy": "orders--payments", "toxic": "slow"}}), kind="fault")
        client.add_toxic("orders--payments", "latency", name="slow", attributes={{"latency": 500}})
        ledger.acquire("outage", Recipe("proxy.enable", {{"api": {api!r}, "proxy": "orders--payments"}}),
                       kind="fault")
        client.update_proxy("orders--payments", enabled=False)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert done.returncode == -9


def test_a_dead_runs_faults_are_reverted_on_the_proxy(
    tmp_path: Path, proxy: ToxiproxyClient
) -> None:
    _die_with_open_faults(tmp_path, proxy.url)
    before = proxy.get_proxy("orders--payments")
    assert not before.enabled and [t.name for t in before.toxics] == ["slow"]

    report = sweep(tmp_path)

    after = proxy.get_proxy("orders--payments")
    assert after.enabled and after.toxics == ()
    assert report.ok and report.runs_swept == ["killed"]
    assert report.reverted == ["run killed: outage", "run killed: latency"], "newest first"
    assert list(ledger_files(tmp_path)) == []
    assert sweep(tmp_path).reverted == [], "sweeping twice is harmless"


def test_a_live_run_is_left_alone_unless_asked(tmp_path: Path, proxy: ToxiproxyClient) -> None:
    proxy.add_toxic("orders--payments", "latency", name="mine", attributes={"latency": 10})
    with Ledger(tmp_path, run_id="alive") as ledger:
        ledger.acquire(
            "mine",
            Recipe(
                "proxy.remove_toxic",
                {"api": proxy.url, "proxy": "orders--payments", "toxic": "mine"},
            ),
        )
        report = sweep(tmp_path)
        assert report.live_runs == ["alive"] and report.reverted == []
        assert [t.name for t in proxy.toxics("orders--payments")] == ["mine"]
        forced = sweep(tmp_path, include_live=True)
        assert forced.reverted == ["run alive: mine"] and proxy.toxics("orders--payments") == []


def test_a_recipe_that_cannot_run_is_reported_and_kept(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from chaos.ledger import Ledger
        from faults.base import Recipe
        ledger = Ledger(Path({str(tmp_path)!r}), run_id="odd")
        ledger.open()
        ledger.acquire("odd", Recipe("process.signal", {{"pid": 1, "start_ticks": 1, "signal": "SIGNOPE"}}))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    subprocess.run([sys.executable, "-c", script], timeout=30)
    report = sweep(tmp_path)
    assert not report.ok and "SIGNOPE" in report.failed[0] and "recipe:" in report.failed[0]
    assert len(list(ledger_files(tmp_path))) == 1, "kept, so the user can see what is left"
    clean = subprocess.run(
        [sys.executable, "-m", "chaos", "clean", f"--state-dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert clean.returncode == 1 and "FAILED to revert: run odd: odd" in clean.stdout
