"""Schedule searches against real local processes: the weak front -> back fails and shrinks to one
short edge outage, the resilient one holds the same search, and nothing is ever left behind —
not after a fault raising mid-schedule, not after SIGINT to pytest in the middle of an example."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from chaos.catalog import load_catalog
from chaos.environments.local import LocalEnvironment
from chaos.errors import ImpactExceeded
from chaos.experiment import Experiment, ExperimentSettings
from chaos.ledger import Ledger
from chaos.schedules import ScheduleSearch, SearchResult, SearchSettings, run_schedule
from chaos.strategies import Schedule, ScheduledFault
from faults.base import Injection, Recipe
from faults.network import latency
from faults.outage import outage
from tests.integration.test_interruption import _open_entries, _processes_with, _wait_until
from tests.integration.test_local_environment import free_port

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "schedules"
EDGE = "front -> back"
SEARCH = {"kinds": ("outage", "latency", "reset_peer"), "horizon": "2s", "budget": 60.0}
QUICK = ExperimentSettings(baseline=0.3)


def variant(tmp_path: Path, catalog_name: str) -> Path:
    """A copy of the fixture catalog on free ports, running from the fixture directory."""
    catalog = yaml.safe_load((FIXTURE / catalog_name).read_text())
    local_name = catalog["environments"]["local"]
    local = yaml.safe_load((FIXTURE / local_name).read_text())
    for index, (name, service) in enumerate(catalog["services"].items()):
        service["port"] = free_port(f"127.0.0.{10 + index}")
        local["services"][name]["cwd"] = str(FIXTURE)
    (tmp_path / "chaos.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    (tmp_path / local_name).write_text(yaml.safe_dump(local, sort_keys=False))
    return tmp_path / "chaos.yaml"


@dataclass
class Running:
    env: LocalEnvironment
    ledger: Ledger

    def search(self, **options: Any) -> ScheduleSearch:
        settings = SearchSettings(**{**SEARCH, **options})
        return ScheduleSearch.for_environment(
            self.env, self.ledger, settings, experiment_settings=QUICK, test_id="t::search"
        )

    def assert_clean(self) -> None:
        """No fault left open in the ledger; the edge's proxy enabled and without toxics."""
        assert [e for e in self.ledger.open_entries if e.kind == "fault"] == []
        proxy = self.env.proxy().proxies()[self.env.proxy_name(self.env.catalog.edge(EDGE))]
        assert proxy.enabled and list(proxy.toxics) == []


def _running(tmp_path: Path, catalog_name: str) -> Iterator[Running]:
    catalog = load_catalog(variant(tmp_path, catalog_name))
    with Ledger(tmp_path, run_id="schedules") as ledger:
        env = LocalEnvironment.from_catalog(
            catalog, run_id="schedules", state_dir=tmp_path, tracker=ledger
        )
        with env:
            yield Running(env, ledger)


@pytest.fixture
def weak(tmp_path: Path) -> Iterator[Running]:
    yield from _running(tmp_path, "chaos.yaml")


@pytest.fixture
def resilient(tmp_path: Path) -> Iterator[Running]:
    yield from _running(tmp_path, "chaos.resilient.yaml")


@pytest.mark.slow
def test_weak_front_fails_and_shrinks_to_one_short_outage_deterministically(
    weak: Running,
) -> None:
    first = weak.search(seed=20261123, max_examples=6).search()
    assert first.failed
    (only,) = first.minimal.faults
    assert (only.fault, only.start, only.duration) == (outage(EDGE), 0.0, 0.5)
    assert first.exploration.trials[0].schedule != first.minimal, "the first failure was shrunk"
    with pytest.raises(ImpactExceeded) as failure:
        first.raise_for_failure()
    message = str(failure.value)
    assert "at 0ms for 500ms: outage front -> back" in message
    assert "SLO of call broke" in message and "replay this schedule" in message
    record = first.record
    assert record is not None and record.test_id == "t::search"
    assert record.extra["schedule_search"]["minimal_schedule"] == first.minimal.to_json()
    weak.assert_clean()
    again = weak.search(seed=20261123, max_examples=6).search()
    assert [t.schedule for t in again.exploration.trials] == [
        t.schedule for t in first.exploration.trials
    ]
    assert [t.verdict for t in again.exploration.trials] == [
        t.verdict for t in first.exploration.trials
    ]
    weak.assert_clean()


@pytest.mark.slow
def test_resilient_front_holds_the_same_search(resilient: Running) -> None:
    found = resilient.search(seed=20261123, max_examples=6).search()
    assert not found.failed, found.message()
    assert len(found.exploration.trials) == 6
    assert {t.verdict for t in found.exploration.trials} == {"held"}
    assert any(
        sf.fault.kind == "outage" for t in found.exploration.trials for sf in t.schedule.faults
    )
    found.raise_for_failure()  # nothing to raise
    resilient.assert_clean()


def test_faults_are_applied_and_reverted_at_their_offsets(weak: Running) -> None:
    schedule = Schedule(
        (
            ScheduledFault(outage(EDGE), 0.2, 0.5),
            ScheduledFault(latency(EDGE, 300), 1.0, 0.4),
        ),
        horizon=2.0,
    )
    exp = Experiment(weak.env, weak.ledger, name="offsets", settings=QUICK)
    run_schedule(exp, schedule)
    record = exp.finish()
    down, slow = record.faults
    assert (down.kind, slow.kind) == ("outage", "latency")
    assert slow.applied_at - down.applied_at == pytest.approx(0.8, abs=0.15)
    assert down.reverted_at - down.applied_at == pytest.approx(0.5, abs=0.15)
    assert slow.reverted_at - slow.applied_at == pytest.approx(0.4, abs=0.15)
    assert record.impacts["call"].errors > 0  # the outage hit the weak front
    weak.assert_clean()


@dataclass(frozen=True)
class Interrupting:
    """A fault whose apply is interrupted, as Ctrl-C would at that moment."""

    kind: ClassVar[str] = "interrupting"
    target: str

    def params(self) -> dict[str, Any]:
        return {}

    def plan(self, env: Any) -> Injection:
        def apply() -> None:
            raise KeyboardInterrupt

        return Injection("interrupting", Recipe("none"), apply, lambda: None)


def test_an_interrupt_mid_schedule_reverts_every_active_fault(weak: Running) -> None:
    schedule = Schedule(
        (
            ScheduledFault(outage(EDGE), 0.0, 1.5),
            ScheduledFault(latency(EDGE, 500), 0.1, 1.4),
            ScheduledFault(Interrupting("back"), 0.3, 0.5),
        ),
        horizon=2.0,
    )
    exp = Experiment(weak.env, weak.ledger, name="interrupted", settings=QUICK)
    with pytest.raises(KeyboardInterrupt):
        run_schedule(exp, schedule)
    record = exp.finish(error=KeyboardInterrupt())
    # The interrupted fault's revert was registered before its apply, so it ran too.
    assert [f.reverted_at is not None for f in record.faults] == [True, True, True]
    weak.assert_clean()


INNER = """
def test_search(chaos_search):
    chaos_search(kinds=("outage", "latency"), horizon="4s", max_examples=50, budget=120)
"""


@pytest.mark.slow
@pytest.mark.parametrize("delay", [1.8, 3.0, 4.5])
def test_sigint_during_a_search_leaves_nothing_behind(tmp_path: Path, delay: float) -> None:
    catalog = variant(tmp_path, "chaos.resilient.yaml")  # holds: the search keeps going
    (tmp_path / "test_inner.py").write_text(INNER)
    token = f"chaos-schedules-{uuid.uuid4().hex}"
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            str(tmp_path / "test_inner.py"),
            f"--chaos-catalog={catalog}",
            f"--chaos-state-dir={state}",
            f"--chaos-results={tmp_path / 'results'}",
            "--chaos-baseline=300ms",
            f"--rootdir={tmp_path}",
        ],
        env={**os.environ, "CHAOS_TEST_TOKEN": token, "PYTHONPATH": str(Path.cwd())},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert _wait_until(lambda: len(_processes_with(token)) >= 3, 20), "services never started"
        _wait_until(lambda: False, delay)  # let the search get into an example
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    where = f"SIGINT {delay}s into the search\n{output[-3000:]}"
    assert proc.returncode == 2, where  # pytest: interrupted
    assert _wait_until(lambda: not _processes_with(token), 10), f"processes left after {where}"
    assert _open_entries(state) == [], f"ledger entries left open after {where}"


# -- the example shop: weak and resilient variants under the same bounded search ----------------

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
SHOP_SEARCH = {
    "seed": 1,
    "kinds": ("outage", "latency"),
    "targets": ("web -> redis", "orders -> payments"),
    "horizon": "2s",
    "budget": 60.0,
    "tolerate": False,  # customers must not see errors; slower answers are allowed
    "expect": {j: {"max_error_rate": 0.05} for j in ("browse", "checkout", "order-status")},
}
needs_stores = pytest.mark.skipif(
    not (shutil.which("redis-server") and list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))),
    reason="PostgreSQL or Redis is not installed: run examples/shop/setup.sh",
)


def _shop_search(tmp_path: Path, catalog_name: str, max_examples: int) -> SearchResult:
    state = Path(tempfile.mkdtemp(prefix="shop-schedules-"))
    state.chmod(0o755)  # traversable by the unprivileged postgres user
    try:
        with pytest.MonkeyPatch.context() as patch, Ledger(tmp_path, run_id="shop") as ledger:
            patch.setenv("SHOP_STATE_DIR", str(state))  # inherited by the services
            catalog = load_catalog(SHOP / catalog_name)
            env = LocalEnvironment.from_catalog(
                catalog, run_id="shop", state_dir=tmp_path, tracker=ledger
            )
            with env:
                settings = SearchSettings(**SHOP_SEARCH, max_examples=max_examples)
                found = ScheduleSearch.for_environment(
                    env, ledger, settings, experiment_settings=ExperimentSettings(baseline=0.5)
                ).search()
                assert [e for e in ledger.open_entries if e.kind == "fault"] == []
            return found
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
@needs_stores
def test_weak_shop_fails_on_a_single_cache_outage(tmp_path: Path) -> None:
    found = _shop_search(tmp_path, "chaos.yaml", max_examples=4)
    assert found.failed, found.message()
    (only,) = found.minimal.faults
    assert (only.fault, only.start, only.duration) == (outage("web -> redis"), 0.0, 0.5)
    assert "browse" in str(found.exploration.minimal.failure)


@pytest.mark.slow
@needs_stores
def test_resilient_shop_holds_the_same_search(tmp_path: Path) -> None:
    found = _shop_search(tmp_path, "chaos.resilient.yaml", max_examples=5)
    assert not found.failed, found.message()
    assert len(found.exploration.trials) == 5
