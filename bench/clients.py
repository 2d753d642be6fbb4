"""The real clients the proxy benchmark drives, and how their output becomes numbers.

redis-benchmark gives request rates, a blocking Python client gives round-trip samples, iperf3
gives bulk throughput; `interleaved` alternates the routes so drift hits all of them alike.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.processes import Address, run_client
from chaos.errors import EnvironmentFailure

PING = b"PING\r\n"
PONG = b"+PONG\r\n"
T = TypeVar("T")


@dataclass(frozen=True)
class RedisRun:
    """One redis-benchmark PING run: its request rate and its own median round trip."""

    rate: float  # requests per second
    p50_us: float  # redis-benchmark's p50 latency (it prints ms with 3 decimals: 1 us steps)


def redis_run(address: Address, clients: int, requests: int, timeout: float) -> RedisRun:
    """redis-benchmark PING (multi-bulk) with `clients` connections."""
    argv = ["redis-benchmark", "-h", address[0], "-p", str(address[1]), "-c", str(clients)]
    argv += ["-n", str(requests), "-t", "ping_mbulk", "--csv", "-q"]
    out = run_client(argv, timeout)
    for record in csv.DictReader(io.StringIO(out)):
        if record.get("test") == "PING_MBULK":
            return RedisRun(float(record["rps"]), float(record["p50_latency_ms"]) * 1e3)
    raise EnvironmentFailure(f"redis-benchmark printed no PING_MBULK row: {out[:300]!r}")


def interleaved(
    measure: Callable[[Address], T], routes: Sequence[Address | None], repeats: int
) -> list[list[T] | None]:
    """Alternate the routes run by run, so drift and load elsewhere on the machine hit all alike.

    The first route (direct) is always there; the others are None when not measured.
    """
    runs: list[list[T] | None] = [None if route is None else [] for route in routes]
    for _ in range(repeats):
        for route, out in zip(routes, runs, strict=True):
            if route is not None and out is not None:
                out.append(measure(route))
    return runs


def median_or_none(runs: list[float] | None) -> float | None:
    return None if runs is None else statistics.median(runs)


def pingpong(address: Address, rounds: int, timeout: float, gap: float = 0.0) -> list[float]:
    """Round-trip times (seconds) of sequential inline PINGs on one connection.

    `gap` idles that long before each PING, so every hop wakes from idle as it does around a
    latency toxic (on a VM, waking an idle CPU alone costs up to ~1 ms at p99).
    """
    deadline = time.monotonic() + timeout
    samples: list[float] = []
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(rounds + 20):
            if time.monotonic() > deadline:
                raise EnvironmentFailure(f"{rounds} PINGs to {address} took longer than {timeout}s")
            if gap:
                time.sleep(gap)
            start = time.perf_counter()
            sock.sendall(PING)
            reply = b""
            while len(reply) < len(PONG):
                chunk = sock.recv(64)
                if not chunk:
                    raise EnvironmentFailure(f"{address} closed the connection mid-PING")
                reply += chunk
            elapsed = time.perf_counter() - start
            if reply != PONG:
                raise EnvironmentFailure(f"{address} answered {reply!r} to PING")
            if index >= 20:  # the first rounds warm up caches and the proxy's connection setup
                samples.append(elapsed)
    return samples


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def iperf_gbps(address: Address, seconds: int, timeout: float) -> float:
    """Bulk TCP throughput (Gbit/s received) of one iperf3 stream."""
    argv = ["iperf3", "-c", address[0], "-p", str(address[1]), "-t", str(seconds), "-J"]
    report = json.loads(run_client(argv, timeout))
    if "error" in report:
        raise EnvironmentFailure(f"iperf3 via {address}: {report['error']}")
    return report["end"]["sum_received"]["bits_per_second"] / 1e9
