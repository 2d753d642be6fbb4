"""bench/proxy.py runs end to end with the real clients (quick counts): every row is measured.

The figures themselves are the benchmark's to print, not this test's to assert (timed
assertions flake); this keeps the benchmark from rotting and checks its table is complete.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("redis-server", "redis-benchmark", "iperf3")


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in NEEDED),
    reason=f"bench/proxy.py needs {', '.join(NEEDED)} (installed by .ci/setup)",
)
def test_proxy_bench_quick_measures_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "proxy.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {row["metric"]: row for row in json.loads(out.read_text())["rows"]}
    expected = [
        "PING rate, 50 connections",
        "round trip from 1-conn rate",
        "ping-pong RTT p50",
        "latency toxic 20 ms vs idle proxied, RTT p99",
        "bulk throughput (iperf3)",
    ]
    if shutil.which("cc") or shutil.which("gcc"):
        expected += [
            "PING rate, 50 connections, via native C threads (reference)",
            "PING rate, 50 connections, via native C epoll (our shape, no Python)",
            "ping-pong RTT p50, via native C busy-poll (floor of any hop)",
            "bulk throughput (iperf3), via native C threads (reference)",
        ]
    missing = [metric for metric in expected if metric not in rows]
    assert not missing, f"rows not measured: {missing}; table:\n{done.stdout}"
    for metric in expected:
        assert rows[metric]["direct"] > 0 and rows[metric]["proxied"] > 0, rows[metric]
    toxic = rows["latency toxic 20 ms vs idle proxied, RTT p99"]
    assert toxic["proxied"] - toxic["direct"] > 15, "the latency toxic was not in the path"
    assert "Traceback" not in done.stderr
