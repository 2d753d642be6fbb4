"""`chaos proxy` / `python -m faults.proxy`: run the proxy server until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from chaos.errors import ProxyError
from faults.proxy.client import ToxiproxyClient
from faults.proxy.errors import BadRequest
from faults.proxy.server import ProxyServer, split_address

LISTEN_HELP = "admin API address host:port (default 127.0.0.1:8474; port 0 picks a free one)"
CONFIG_HELP = "JSON file with a list of proxies, as for Toxiproxy's /populate"
ALLOW_HELP = "extra Host header names the admin API accepts (e.g. a Compose service name)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaos proxy", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:8474", help=LISTEN_HELP)
    parser.add_argument("--config", type=Path, help=CONFIG_HELP)
    parser.add_argument("--allow-host", action="append", default=[], help=ALLOW_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        host, port = split_address(args.listen, "--listen")
        proxies = json.loads(args.config.read_text()) if args.config else []
    except (BadRequest, OSError, ValueError) as err:
        print(f"chaos proxy: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = ProxyServer(host, port, allowed_hosts=args.allow_host).start()
    except OSError as err:
        print(f"chaos proxy: cannot listen on {args.listen}: {err}", file=sys.stderr)
        return 1
    try:
        if proxies:
            ToxiproxyClient(server.api_url).populate(proxies)
        print(f"chaos proxy: admin API on {server.api_url}", flush=True)
        while not stop.wait(0.5):
            pass
    except ProxyError as err:
        print(f"chaos proxy: {args.config}: {err}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0
