"""Game-day defaults: the shop's catalog unless the user names one, and its known weaknesses.

The weak shop (chaos.yaml) has three deliberate weaknesses (examples/shop/README.md). An
experiment that exposes one is marked `@pytest.mark.weakness("b")` (or listed in MATRIX_WEAKNESSES
by failure-mode id); against the weak shop it becomes a strict xfail — it must fail, with an
AssertionError (not recovered, impact exceeded, invariant violated) — and against the resilient
shop (chaos.resilient.yaml, SHOP_RESILIENT=1) it must pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaos.environments.local_spec import load_local_spec
from chaos.plugin import SESSION_KEY

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = ROOT / "examples" / "shop" / "chaos.yaml"
README = "examples/shop/README.md"

WEAKNESSES = {
    "a": "orders calls payments without a timeout, so a slow payments provider hangs checkout",
    "b": "orders never replaces a broken database connection after a restart or network cut",
    "c": "web treats the Redis cache as a hard dependency, so a cache outage breaks browse",
}
MATRIX_WEAKNESSES = {  # failure-mode id (see chaos.coverage.FailureMode.id) -> weakness
    "kill-postgres": "b",
    "outage-orders->postgres": "b",
}
WEAKNESS_HELP = (
    "weakness(letter): the experiment exposes a deliberate weakness of the weak example shop "
    "(a, b or c, see examples/shop/README.md); a strict xfail unless the shop is resilient."
)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Default --chaos-catalog to the weak shop when neither CLI, CHAOS_CATALOG nor ini set one."""
    config.addinivalue_line("markers", WEAKNESS_HELP)
    named = (
        config.getoption("chaos_catalog", None)
        or os.environ.get("CHAOS_CATALOG")
        or config.getini("chaos_catalog")
    )
    if not named:
        config.option.chaos_catalog = str(DEFAULT_CATALOG)


def shop_is_resilient(config: pytest.Config) -> bool:
    """Whether the catalog's local services run with SHOP_RESILIENT=1 (as its local file declares)."""
    catalog = config.stash[SESSION_KEY].catalog()
    path = catalog.environments.get("local")
    if path is None:
        return os.environ.get("SHOP_RESILIENT") == "1"
    spec = load_local_spec(path, catalog)
    return any(service.env.get("SHOP_RESILIENT") == "1" for service in spec.services.values())


def _weakness_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("weakness")
    if marker is not None:
        letter = marker.args[0]
        if letter not in WEAKNESSES:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.weakness({letter!r}): use one of "
                f"{', '.join(WEAKNESSES)}"
            )
        return letter
    callspec = getattr(item, "callspec", None)
    mode = callspec.params.get("failure_mode") if callspec is not None else None
    return MATRIX_WEAKNESSES.get(mode.id) if mode is not None else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against the weak shop, experiments that expose a weakness must fail: strict xfail."""
    here = Path(__file__).parent
    ours = [item for item in items if here in Path(str(item.path)).parents]
    flagged = [(item, letter) for item in ours if (letter := _weakness_of(item))]
    if not flagged or shop_is_resilient(config):
        return
    for item, letter in flagged:
        reason = f"weak shop, weakness ({letter}): {WEAKNESSES[letter]} — see {README}"
        item.add_marker(pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError))
