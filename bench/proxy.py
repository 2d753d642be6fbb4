"""Measures the built-in proxy against direct connections in one run, with real clients."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.clients import (  # noqa: E402
    RedisRun,
    interleaved,
    iperf_gbps,
    median_or_none,
    percentile,
    pingpong,
    redis_run,
)
from bench.processes import (  # noqa: E402
    LOOPBACK,
    Address,
    build_native,
    free_port,
    spawn,
    wait_listening,
)
from chaos.errors import ChaosError  # noqa: E402

TOXIC_LATENCY_MS = 20.0


@dataclass(frozen=True)
class Budget:
    """How much each measurement may do, so a run stays bounded in count and time."""

    rate_requests_50: int
    rate_requests_1: int
    repeats: int  # direct and proxied runs alternate this many times; medians are kept
    pingpong_rounds: int
    toxic_rounds: int
    iperf_seconds: int
    step_timeout_s: float


QUICK = Budget(20_000, 3_000, 1, 1_000, 60, 1, 30.0)
# Many short slices, alternating direct and proxied: on a 2-vCPU VM the scheduler's placement
# of client and server drifts from minute to minute (direct ping-pong p50 seen from 27 to 350 us),
# so a few long runs measure luck; eight short pairs put the drift on both sides alike.
FULL = Budget(60_000, 6_000, 8, 8_000, 300, 2, 120.0)


class Verdict(enum.Enum):
    """Whether a row meets its target; INFO rows have no target of their own."""

    PASS = "pass"
    FAIL = "FAIL"
    INFO = "info"


@dataclass(frozen=True)
class Row:
    """One line of the result table: the same metric measured direct and through the proxy."""

    metric: str
    unit: str
    direct: float
    proxied: float | None
    target: str
    verdict: Verdict

    @property
    def ratio(self) -> float | None:
        if self.proxied is None or self.direct == 0:
            return None
        return self.proxied / self.direct

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["ratio"] = self.ratio
        return data


@dataclass(frozen=True)
class Routes:
    """Where the clients connect: the real servers, and the proxies in front of them (if any)."""

    redis: Address
    iperf: Address
    redis_proxied: Address | None = None
    iperf_proxied: Address | None = None
    redis_toxic: Address | None = None
    redis_native: Address | None = None  # native thread-per-direction forwarder (reference)
    iperf_native: Address | None = None
    redis_floor: Address | None = None  # native busy-poll forwarder: the least a hop can add
    redis_epoll: Address | None = None  # native one-epoll forwarder: our shape without Python

    @property
    def redis_proxied_and_native(self) -> list[Address | None]:
        """The hops measured against direct redis: ours, native threads, native epoll."""
        return [self.redis_proxied, self.redis_native, self.redis_epoll]


def start_servers(stack: ExitStack) -> tuple[Address, Address]:
    """A throwaway redis-server and iperf3 server on loopback ports, stopped with `stack`."""
    redis = (LOOPBACK, free_port())
    redis_argv = ["redis-server", "--port", str(redis[1]), "--bind", LOOPBACK]
    redis_argv += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    wait_listening(redis, 10, spawn(stack, redis_argv))
    iperf = (LOOPBACK, free_port())
    iperf_proc = spawn(stack, ["iperf3", "-s", "-p", str(iperf[1]), "-B", LOOPBACK])
    wait_listening(iperf, 10, iperf_proc)
    return redis, iperf


# ---------------------------------------------------------------- the proxy under test


def parse_address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return (host.strip("[]") or LOOPBACK, int(port))


def start_proxy(stack: ExitStack, how: str, url: str | None) -> str:
    """Return the admin URL of the proxy to measure: a child process, a thread, or given."""
    if url is not None:
        return url.rstrip("/")
    if how == "thread":
        from faults.proxy.server import ProxyServer

        server = ProxyServer(host=LOOPBACK, port=0)
        server.start()
        stack.callback(server.stop)
        return server.api_url
    port = free_port()
    argv = [sys.executable, "-m", "faults.proxy", "--listen", f"{LOOPBACK}:{port}"]
    wait_listening((LOOPBACK, port), 15, spawn(stack, argv))
    return f"http://{LOOPBACK}:{port}"


def wire_proxies(stack: ExitStack, api_url: str, redis: Address, iperf: Address) -> Routes:
    """Create one proxy per route (plus one carrying the latency toxic); deleted afterwards."""
    from faults.proxy.client import ToxiproxyClient

    client = ToxiproxyClient(api_url, timeout=5.0)
    client.version()

    def make(name: str, upstream: Address) -> Address:
        info = client.create_proxy(name, f"{upstream[0]}:{upstream[1]}", listen=f"{LOOPBACK}:0")
        stack.callback(client.delete_proxy, name)
        return parse_address(info.listen)

    tag = f"bench{os.getpid()}"
    routes = Routes(
        redis=redis,
        iperf=iperf,
        redis_proxied=make(f"{tag}_redis", redis),
        iperf_proxied=make(f"{tag}_iperf", iperf),
        redis_toxic=make(f"{tag}_redis_latency", redis),
    )
    client.add_toxic(
        f"{tag}_redis_latency",
        "latency",
        attributes={"latency": int(TOXIC_LATENCY_MS), "jitter": 0},
        name="bench_latency",
        stream="downstream",
    )
    return routes


def wire_native(stack: ExitStack, routes: Routes) -> Routes:
    """Put the native reference forwarders in front of redis and iperf3 (if a compiler exists)."""
    binary, why_not = build_native(Path(stack.enter_context(tempfile.TemporaryDirectory())))
    if binary is None:
        print(f"bench/proxy.py: {why_not}", file=sys.stderr)
        return routes

    def forward(mode: str, upstream: Address) -> Address:
        address = (LOOPBACK, free_port())
        argv = [str(binary), mode, str(address[1]), str(upstream[1])]
        wait_listening(address, 10, spawn(stack, argv))
        return address

    return dataclasses.replace(
        routes,
        redis_native=forward("threads", routes.redis),
        iperf_native=forward("threads", routes.iperf),
        redis_floor=forward("spin", routes.redis),
        redis_epoll=forward("epoll", routes.redis),
    )


# ---------------------------------------------------------------- rows


def ratio_row(metric: str, unit: str, direct: float, proxied: float | None, floor: float) -> Row:
    verdict = Verdict.INFO
    if proxied is not None:
        verdict = Verdict.PASS if proxied >= floor * direct else Verdict.FAIL
    return Row(metric, unit, direct, proxied, f">= {floor}x direct", verdict)


def added_row(
    metric: str, unit: str, direct: float, proxied: float | None, target: str, ok: Callable
) -> Row:
    """A row whose target is on the difference proxied - direct, judged by `ok(difference)`."""
    verdict = Verdict.INFO
    if proxied is not None:
        verdict = Verdict.PASS if ok(proxied - direct) else Verdict.FAIL
    return Row(metric, unit, direct, proxied, target, verdict)


NATIVE = "via native C threads (reference)"
EPOLL = "via native C epoll (our shape, no Python)"


def reference_row(metric: str, unit: str, direct: float, native: float | None) -> list[Row]:
    """The same metric through the native forwarder: no target, it shows what the machine costs."""
    return [] if native is None else [Row(metric, unit, direct, native, "-", Verdict.INFO)]


def rate_rows(routes: Routes, budget: Budget) -> list[Row]:
    def runs(
        clients: int, requests: int, route_list: list[Address | None]
    ) -> list[list[RedisRun] | None]:
        def measure(address: Address) -> RedisRun:
            return redis_run(address, clients, requests, budget.step_timeout_s)

        return interleaved(measure, route_list, budget.repeats)

    def median(of: list[RedisRun] | None, field: str) -> float | None:
        return median_or_none(None if of is None else [getattr(run, field) for run in of])

    many = runs(50, budget.rate_requests_50, [routes.redis, *routes.redis_proxied_and_native])
    direct_many, proxied_many, threads_many, epoll_many = (median(r, "rate") for r in many)
    one = runs(1, budget.rate_requests_1, [routes.redis, routes.redis_proxied])
    (direct_one, proxied_one), (direct_p50, proxied_p50) = (
        [median(r, field) for r in one] for field in ("rate", "p50_us")
    )
    assert direct_many is not None and direct_one is not None and direct_p50 is not None
    one_rtt = (1e6 / direct_one, None if proxied_one is None else 1e6 / proxied_one)
    return [
        ratio_row("PING rate, 50 connections", "req/s", direct_many, proxied_many, floor=0.5),
        *reference_row(f"PING rate, 50 connections, {NATIVE}", "req/s", direct_many, threads_many),
        *reference_row(f"PING rate, 50 connections, {EPOLL}", "req/s", direct_many, epoll_many),
        Row("PING rate, 1 connection", "req/s", direct_one, proxied_one, "-", Verdict.INFO),
        added_row("round trip from 1-conn rate", "us", *one_rtt, WITHIN_50_US, at_most_50),
        added_row(
            "latency p50, 1 connection (redis-benchmark)",
            "us",
            direct_p50,
            proxied_p50,
            WITHIN_50_US,
            at_most_50,
        ),
    ]


WITHIN_50_US = "+<= 50 us"  # the added-latency target, judged by at_most_50


def at_most_50(added_us: float) -> bool:
    return added_us <= 50.0


def latency_rows(routes: Routes, budget: Budget) -> list[Row]:
    rounds = max(1, budget.pingpong_rounds // budget.repeats)

    def measure(address: Address) -> list[float]:
        return pingpong(address, rounds, budget.step_timeout_s)

    route_list = [routes.redis, routes.redis_proxied, routes.redis_floor]
    pooled = [
        None if runs is None else [sample for run in runs for sample in run]
        for runs in interleaved(measure, route_list, budget.repeats)
    ]

    def at(fraction: float, which: int = 1) -> tuple[float, float | None]:
        direct, other = pooled[0], pooled[which]
        assert direct is not None
        return percentile(direct, fraction) * 1e6, (
            None if other is None else percentile(other, fraction) * 1e6
        )

    floor = "ping-pong RTT p50, via native C busy-poll (floor of any hop)"
    rows = [
        added_row("ping-pong RTT p50", "us", *at(0.5), WITHIN_50_US, at_most_50),
        *reference_row(floor, "us", *at(0.5, which=2)),
        Row("ping-pong RTT p99", "us", *at(0.99), "-", Verdict.INFO),
    ]
    if routes.redis_toxic is not None:
        toxic_timeout = budget.step_timeout_s + budget.toxic_rounds * TOXIC_LATENCY_MS / 1e3
        toxic = pingpong(routes.redis_toxic, budget.toxic_rounds, toxic_timeout)
        idle = pingpong(
            routes.redis_proxied, budget.toxic_rounds, toxic_timeout, gap=TOXIC_LATENCY_MS / 1e3
        )
        rows += [toxic_row(name, fraction, idle, toxic) for name, fraction in PERCENTILES]
    return rows


PERCENTILES = (("p50", 0.5), ("p99", 0.99))


def toxic_row(name: str, fraction: float, idle: list[float], toxic: list[float]) -> Row:
    """How far the latency toxic's added round trip is from what it was asked to add.

    The reference is the same proxy without the toxic, idling TOXIC_LATENCY_MS before each PING,
    so wake-from-idle costs (the VM's, not the toxic's) are on both sides.
    """
    return added_row(
        f"latency toxic {TOXIC_LATENCY_MS:g} ms vs idle proxied, RTT {name}",
        "ms",
        percentile(idle, fraction) * 1e3,
        percentile(toxic, fraction) * 1e3,
        f"+{TOXIC_LATENCY_MS:g} +-1 ms",
        lambda d: abs(d - TOXIC_LATENCY_MS) <= 1.0,
    )


def bulk_rows(routes: Routes, budget: Budget) -> list[Row]:
    def measure(address: Address) -> float:
        return iperf_gbps(
            address, budget.iperf_seconds, budget.iperf_seconds + budget.step_timeout_s
        )

    route_list = [routes.iperf, routes.iperf_proxied, routes.iperf_native]
    direct, proxied, native = (
        median_or_none(runs) for runs in interleaved(measure, route_list, budget.repeats)
    )
    assert direct is not None
    return [
        ratio_row("bulk throughput (iperf3)", "Gbit/s", direct, proxied, 0.5),
        *reference_row(f"bulk throughput (iperf3), {NATIVE}", "Gbit/s", direct, native),
    ]


# ---------------------------------------------------------------- output


def render(rows: Sequence[Row]) -> str:
    """The result table: metric, direct, proxied, ratio, added, target, verdict."""

    def num(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"

    header = ("metric", "unit", "direct", "proxied", "ratio", "added", "target", "result")
    lines = [header]
    for row in rows:
        added = None if row.proxied is None else row.proxied - row.direct
        ratio = "-" if row.ratio is None else f"{row.ratio:.3f}x"
        lines.append(
            (
                row.metric,
                row.unit,
                num(row.direct),
                num(row.proxied),
                ratio,
                num(added),
                row.target,
                row.verdict.value,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    ]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
    }


# ---------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke, < 30 s)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--proxy",
        choices=("process", "thread"),
        default="process",
        help="run the built-in proxy as `python -m faults.proxy` (default) or in this process",
    )
    parser.add_argument("--proxy-url", help="measure an already running Toxiproxy at this URL")
    parser.add_argument("--direct-only", action="store_true", help="measure without any proxy")
    parser.add_argument(
        "--no-native",
        action="store_true",
        help="leave out the native C forwarders measured as a reference (needs cc)",
    )
    return parser.parse_args(argv)


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so every spawned server is still stopped."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> list[Row]:
    budget = QUICK if args.quick else FULL
    with ExitStack() as stack:
        redis, iperf = start_servers(stack)
        routes = Routes(redis=redis, iperf=iperf)
        if not args.direct_only:
            api_url = start_proxy(stack, args.proxy, args.proxy_url)
            routes = wire_proxies(stack, api_url, redis, iperf)
        if not (args.direct_only or args.no_native):  # --direct-only: no proxy of any kind
            routes = wire_native(stack, routes)
        return [
            *rate_rows(routes, budget),
            *latency_rows(routes, budget),
            *bulk_rows(routes, budget),
        ]


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when every measurement ran (targets missed are reported, not asserted), else 2."""
    args = parse_args(argv)
    started = time.monotonic()
    try:
        with sigterm_as_exit():
            rows = run(args)
    except (ChaosError, OSError, ImportError, ValueError, KeyError) as err:
        print(f"bench/proxy.py: could not run: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    print(render(rows))
    elapsed = time.monotonic() - started
    missed = sum(row.verdict is Verdict.FAIL for row in rows)
    print(f"\n{len(rows)} rows in {elapsed:.1f}s; {missed} target(s) missed")
    if args.json is not None:
        document = {
            "benchmark": "proxy",
            "mode": "quick" if args.quick else "full",
            "proxy": "none" if args.direct_only else (args.proxy_url or args.proxy),
            "elapsed_s": elapsed,
            "environment": environment(),
            "rows": [row.as_json() for row in rows],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
