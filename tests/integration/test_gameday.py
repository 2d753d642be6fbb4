"""The README's main job, end to end: the example game day finds the weak shop's weaknesses and the
resilient shop tolerates them. Both runs go through `python -m chaos run`, as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.gameday import run_game_day

SHOP_PORTS = {15432, 16379, 18000, 18001, 18002}  # see examples/shop/chaos.yaml


def _run_game_day(tmp_path: Path, catalog: str) -> dict:
    done, journal = run_game_day(tmp_path, catalog, "local")
    results = tmp_path / "results"
    assert f"journal: {results / 'journal.json'}" in done.stdout
    assert f"html matrix: {results / 'report.html'}" in done.stdout
    assert list((results / "allure-results").glob("*-result.json")), "Allure results written"
    return journal


def _outcomes(journal: dict) -> dict[str, str]:
    return {e["test_id"].split("::")[-1]: e["outcome"] for e in journal["experiments"]}


def _nothing_listens() -> bool:
    """No TCP socket of this machine listens on a shop port (any 127.0.0.x address)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                listening.add(int(local.rsplit(":", 1)[1], 16))
    return not (listening & SHOP_PORTS)


@pytest.mark.slow
def test_the_weak_shop_shows_its_weaknesses(tmp_path: Path) -> None:
    journal = _run_game_day(tmp_path, "chaos.yaml")
    outcomes = _outcomes(journal)
    assert outcomes["test_failure_mode[kill-postgres]"] == "not-recovered"
    assert outcomes["test_failure_mode[outage-orders->postgres]"] == "not-recovered"
    assert outcomes["test_failure_mode[kill-payments]"] == "tolerated"
    assert journal["coverage"]["ratio"] == 1.0 and journal["coverage"]["missing"] == []
    assert _nothing_listens(), "the shop was stopped at the end of the run"


@pytest.mark.slow
def test_the_resilient_shop_tolerates_them(tmp_path: Path) -> None:
    journal = _run_game_day(tmp_path, "chaos.resilient.yaml")
    outcomes = _outcomes(journal)
    assert "not-recovered" not in outcomes.values() and "broken" not in outcomes.values(), outcomes
    assert outcomes["test_browse_survives_cache_outage"] == "tolerated"
    assert outcomes["test_checkout_survives_very_slow_payments"] == "tolerated"
    assert _nothing_listens()
