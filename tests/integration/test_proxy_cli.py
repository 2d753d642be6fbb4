"""`python -m faults.proxy` as users run it: proxies from a config file, orderly SIGTERM."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_proxy_robustness import EchoServer, recv_exactly

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def admin_get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def refused(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def wait_admin(proc: subprocess.Popen[str], api_url: str) -> None:
    """Poll /version until the server answers, failing early with its stderr if it exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"proxy exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(f"{api_url}/version", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the proxy admin API at {api_url} did not answer within {START_TIMEOUT}s")


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "faults.proxy", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


@pytest.fixture
def running(tmp_path: Path, echo: EchoServer) -> Iterator[tuple[subprocess.Popen[str], dict]]:
    """The CLI serving a Toxiproxy-format config: one enabled and one disabled proxy."""
    api_port, on_port, off_port = free_port(), free_port(), free_port()
    config = [
        {"name": "echo_on", "listen": f"{LOOPBACK}:{on_port}", "upstream": echo.address},
        {
            "name": "echo_off",
            "listen": f"{LOOPBACK}:{off_port}",
            "upstream": echo.address,
            "enabled": False,
        },
    ]
    path = tmp_path / "proxies.json"
    path.write_text(json.dumps(config))
    proc = spawn("--listen", f"{LOOPBACK}:{api_port}", "--config", str(path))
    try:
        api_url = f"http://{LOOPBACK}:{api_port}"
        wait_admin(proc, api_url)
        yield proc, {"api": api_url, "api_port": api_port, "on": on_port, "off": off_port}
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT)


def test_config_proxies_exist_and_forward(running, echo: EchoServer) -> None:
    _, where = running
    proxies = admin_get(f"{where['api']}/proxies")
    assert set(proxies) == {"echo_on", "echo_off"}
    assert proxies["echo_on"]["listen"] == f"{LOOPBACK}:{where['on']}"
    assert proxies["echo_on"]["upstream"] == echo.address
    assert proxies["echo_on"]["enabled"] is True
    assert proxies["echo_off"]["enabled"] is False
    payload = bytes(range(256)) * 256
    with socket.create_connection((LOOPBACK, where["on"]), timeout=5) as conn:
        conn.sendall(payload)
        assert recv_exactly(conn, len(payload)) == payload
    assert refused(where["off"]), "a proxy disabled in the config accepts connections"


def test_sigterm_exits_zero_and_closes_connections(running) -> None:
    proc, where = running
    with socket.create_connection((LOOPBACK, where["on"]), timeout=5) as conn:
        conn.sendall(b"ping")
        assert recv_exactly(conn, 4) == b"ping"
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the proxy did not exit within {STOP_TIMEOUT}s of SIGTERM")
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        with contextlib.suppress(ConnectionResetError):  # a reset is a close too
            assert conn.recv(1) == b"", "a proxied connection outlived the proxy"
    assert refused(where["on"]), "the proxy's listen port still accepts after exit"
    assert refused(where["api_port"]), "the admin port still accepts after exit"


def test_unreadable_config_fails_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    proc = spawn("--listen", f"{LOOPBACK}:{free_port()}", "--config", str(missing))
    try:
        _, stderr = proc.communicate(timeout=START_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=STOP_TIMEOUT)
    assert proc.returncode != 0
    assert str(missing) in stderr
