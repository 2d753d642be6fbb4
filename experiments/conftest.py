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

from chaos.catalog import Catalog
from chaos.environments.local_spec import load_local_spec
from chaos.errors import ChaosError
from chaos.plugin import SESSION_KEY

ROOT = Path(__file__).resolve().parent.parent
SHOP_DIR = ROOT / "examples" / "shop"
DEFAULT_CATALOG = SHOP_DIR / "chaos.yaml"
SHOP_IMAGE = "SHOP_IMAGE"  # the variable examples/shop/compose.yaml takes its image from
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


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compose runs of the shop: build its image if missing and name the exact tag in SHOP_IMAGE."""
    chaos = session.config.stash[SESSION_KEY]
    if chaos.settings.env != "compose" or os.environ.get(SHOP_IMAGE):
        return
    compose_file = chaos.catalog().environments.get("compose")
    if compose_file is None or SHOP_DIR not in compose_file.resolve().parents:
        return
    from examples.shop.images import ensure_shop_image

    try:
        os.environ[SHOP_IMAGE] = ensure_shop_image()  # progress on stderr
    except ChaosError as err:
        raise pytest.UsageError(
            f"cannot build the example shop's image for {compose_file}: {err}. Build it with "
            "`python -m examples.shop.images`, or run the local environment (--chaos-env local)"
        ) from err


def _resilient_env(values: list[object]) -> bool:
    return any(str(value) == "1" for value in values)


def compose_is_resilient(compose_file: Path) -> bool:
    """Whether a service of the compose file has SHOP_RESILIENT=1, as Compose itself reads it."""
    from chaos.environments.compose import ComposeCli, compose_command

    config = ComposeCli(compose_command(), "shop-variant", (compose_file,)).config()
    values = []
    for service in config["services"].values():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        values.append(environment.get("SHOP_RESILIENT"))
    return _resilient_env(values)


def shop_is_resilient(config: pytest.Config) -> bool:
    """Whether the environment this run uses starts the shop with SHOP_RESILIENT=1.

    Read from the catalog's file for that environment kind (local.yaml / compose.yaml and their
    resilient twins); SHOP_RESILIENT in our own environment when the catalog has no such file.
    """
    chaos = config.stash[SESSION_KEY]
    catalog: Catalog = chaos.catalog()
    path = catalog.environments.get(chaos.settings.env)
    if path is None:
        return os.environ.get("SHOP_RESILIENT") == "1"
    if chaos.settings.env == "compose":
        return compose_is_resilient(path)
    spec = load_local_spec(path, catalog)
    return _resilient_env([service.env.get("SHOP_RESILIENT") for service in spec.services.values()])


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
