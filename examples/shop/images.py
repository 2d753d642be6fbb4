"""Build the example shop's one container image: the Debian base with its packages plus services/.

Every shop service (postgres, redis, payments, orders, web) runs from this image in compose.yaml,
which names it `${SHOP_IMAGE:-pytest-chaos/shop:latest}`. The image is a small layer on the base
`chaos images build --packages ...` makes, tagged by the hash of its content, and also tagged
`latest` so that `docker-compose -f examples/shop/compose.yaml up` works by hand.

    python -m examples.shop.images [--quiet]    # build what is missing, print the tag
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from chaos.aptsources import host_suite
from chaos.errors import ChaosError, EnvironmentFailure
from chaos.images import ImageBuilder, Layer, base_tag

SHOP_DIR = Path(__file__).resolve().parent
SHOP_REPO = "pytest-chaos/shop"
LATEST = f"{SHOP_REPO}:latest"
SHOP_PACKAGES = ("postgresql", "python3-psycopg2", "python3-redis", "redis-server")


def shop_layer(shop_dir: Path = SHOP_DIR) -> Layer:
    """services/*.py and items.json under APP_DIR/shop (/opt/pytest-chaos/shop)."""
    services = sorted(
        path for path in (shop_dir / "services").iterdir() if path.suffix in (".py", ".json")
    )
    return Layer(
        repo=SHOP_REPO,
        kind="shop",
        files=tuple((f"shop/services/{path.name}", path) for path in services),
    )  # no instructions: each is a slow layer commit; compose.yaml sets working_dir, HOST, …


def shop_image_tag(builder: ImageBuilder | None = None) -> str:
    """The tag `ensure_shop_image` produces, computed without Docker."""
    builder = builder or ImageBuilder(quiet=True)
    return shop_layer().tag(base_tag(host_suite(builder.etc), SHOP_PACKAGES))


def ensure_shop_image(*, quiet: bool = False) -> str:
    """Build the base (first time: about a minute), proxy and shop layers that are missing.

    Returns the content-hash tag, which `latest` then names too.
    """
    builder = ImageBuilder(quiet=quiet)
    report = builder.ensure(SHOP_PACKAGES)
    tag = builder.ensure_layer(shop_layer(), report.images.base)
    _alias(tag, LATEST)
    return tag


def _alias(tag: str, alias: str) -> None:
    try:
        done = subprocess.run(
            ["docker", "tag", tag, alias], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise EnvironmentFailure(f"`docker tag {tag} {alias}` failed: {err}") from err
    if done.returncode != 0:
        raise EnvironmentFailure(f"`docker tag {tag} {alias}` failed: {done.stderr.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.shop.images", description=__doc__)
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    try:
        print(ensure_shop_image(quiet=args.quiet))
    except ChaosError as err:
        print(f"shop images: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
