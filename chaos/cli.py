"""The `chaos` command: run a game day, sweep leftovers, serve the proxy, summarise a journal."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chaos.errors import ChaosError
from chaos.ledger import default_state_dir

DEFAULT_CATALOG = Path("examples/shop/chaos.yaml")
DEFAULT_SUITE = Path("experiments")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["proxy"]:  # the proxy owns its own options
        from faults.proxy.cli import main as proxy_main

        return proxy_main(argv[1:])
    if argv[:1] == ["report"]:  # so does the report command
        from chaos.report.cli import main as report_main

        return report_main(argv[1:])
    if argv[:1] == ["images"]:  # so do the image builder's
        from chaos.images import main as images_main

        return images_main(argv[1:])
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if rest and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.handler(args, rest))
    except ChaosError as err:
        print(f"chaos {args.command}: error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser(
        "run",
        help="run a game-day suite with pytest and write the reports",
        description="Extra arguments are passed to pytest.",
    )
    run.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG, help="catalog (chaos.yaml)")
    run.add_argument("--suite", type=Path, default=DEFAULT_SUITE, help="experiments directory")
    run.add_argument(
        "--env",
        choices=("auto", "local", "compose"),
        default="auto",
        help="environment kind; auto: compose when a Docker engine answers and the catalog "
        "declares a compose environment, else local",
    )
    run.add_argument(
        "--results", type=Path, default=Path("chaos-results"), help="reports directory"
    )
    run.add_argument("--seed", help="replay a run with this seed")
    run.set_defaults(handler=_run)

    clean = sub.add_parser("clean", help="revert every fault and resource left by dead runs")
    clean.add_argument("--state-dir", type=Path, default=None, help="ledger directory to sweep")
    clean.add_argument(
        "--all",
        action="store_true",
        help="also revert runs whose owner still runs (only when you know it hangs)",
    )
    clean.set_defaults(handler=_clean)

    sub.add_parser(
        "images",
        help="build the container images locally, no registry needed "
        "(chaos images build [--packages a,b] | chaos images list)",
    )
    sub.add_parser(
        "proxy",
        help="serve the built-in Toxiproxy-compatible proxy "
        "(chaos proxy --listen 127.0.0.1:8474 [--config proxies.json])",
    )

    sub.add_parser(
        "report",
        help="summarise a journal, write its HTML matrix, compare baselines "
        "(chaos report [JOURNAL] [--html OUT] [--compare A B] [--threshold 0.2])",
    )
    return parser


def _run(args: argparse.Namespace, pytest_args: list[str]) -> int:
    if not args.catalog.is_file():
        raise ChaosError(f"--catalog {args.catalog}: no such file (run from the project root?)")
    env = resolve_env(args.env, args.catalog)
    allure_dir = args.results / "allure-results"
    command = [
        *(sys.executable, "-m", "pytest", str(args.suite), "-v"),
        f"--chaos-catalog={args.catalog}",
        f"--chaos-env={env}",
        f"--chaos-results={args.results}",
        *([f"--alluredir={allure_dir}"] if not any("alluredir" in a for a in pytest_args) else []),
        *(["--chaos-seed", args.seed] if args.seed else []),
        *pytest_args,
    ]
    print("chaos run:", " ".join(command), flush=True)
    started = time.time()
    code = subprocess.call(command)
    journal = args.results / "journal.json"
    fresh = journal.exists() and journal.stat().st_mtime >= started
    print(
        "\nreports:" if fresh else "\nno journal was written by this run: see pytest's output above"
    )
    for label, path in (
        ("journal", journal),
        ("html matrix", args.results / "report.html"),
        ("allure results", allure_dir),
    ):
        if fresh and path.exists():
            print(f"  {label}: {path.resolve()}")
    # The game day's job is to measure: degraded / not-recovered outcomes are findings, not a crash.
    return 0 if code in (0, 1) and fresh else (code or 1)


def resolve_env(choice: str, catalog: Path) -> str:
    """`auto`: compose when the catalog declares it and a Docker engine and Compose answer."""
    if choice != "auto":
        return choice
    from chaos.catalog import load_catalog

    if "compose" not in load_catalog(catalog).environments:
        return "local"
    try:
        from chaos.environments.compose import compose_command
        from faults.container import docker_client

        docker_client().close()
        compose_command()
    except ChaosError as err:
        print(f"chaos run: using the local environment ({err})")
        return "local"
    return "compose"


def _clean(args: argparse.Namespace, _rest: list[str]) -> int:
    from reconcilers.sweeper import sweep

    state_dir = args.state_dir or default_state_dir()
    report = sweep(state_dir, include_live=args.all, docker_labels=True)
    for line in report.lines():
        print(line)
    if not report.reverted and not report.failed:
        print(f"nothing to clean in {state_dir}")
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
