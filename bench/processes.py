"""Servers, clients and ports the benchmarks start, and the native reference forwarders.

Every process started here is stopped with the ExitStack it was given (SIGTERM, then SIGKILL).
The native forwarders (native_forwarder.c) answer "how much of what the proxy adds is the proxy,
and how much is this machine": `threads` has the shape of Toxiproxy (a goroutine per direction),
`spin` is the floor of any user-space hop (never sleeps, no event loop). They are built with the
system's C compiler; without one the reference rows are left out, with the reason printed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from chaos.errors import EnvironmentFailure

LOOPBACK = "127.0.0.1"
Address = tuple[str, int]


def free_port() -> int:
    """A loopback port that was free a moment ago (the server binding it next is ours)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_listening(address: Address, timeout: float, server: Spawned) -> None:
    """Block until `address` accepts connections; fail early if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise EnvironmentFailure(
                f"{' '.join(map(str, server.proc.args))} exited with {server.proc.returncode} "
                f"before listening on {address[0]}:{address[1]}: {server.output()}"
            )
        try:
            socket.create_connection(address, timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise EnvironmentFailure(f"nothing listens on {address[0]}:{address[1]} after {timeout}s")


@dataclass(frozen=True)
class Spawned:
    """A server process and the file its stderr goes to (a file, not a pipe: it never fills)."""

    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace").strip()[-800:] or "no output"


def spawn(stack: ExitStack, argv: Sequence[str]) -> Spawned:
    """Start a server process that is always terminated (then killed) when `stack` closes."""
    if shutil.which(argv[0]) is None and not os.path.isabs(argv[0]):
        raise EnvironmentFailure(f"{argv[0]} is not installed; install the Debian package first")
    log = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (closed by the stack)
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
    )
    stack.callback(stop_process, proc)
    return Spawned(proc, log)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a short grace period, then SIGKILL: no process outlives the benchmark."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def run_client(argv: Sequence[str], timeout: float) -> str:
    """Run a benchmark client to completion and return its stdout; any failure is an error."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as err:
        raise EnvironmentFailure(f"{argv[0]} is not installed: {err}") from err
    except subprocess.TimeoutExpired as err:
        raise EnvironmentFailure(f"{' '.join(argv)} took longer than {timeout}s") from err
    if done.returncode != 0:
        raise EnvironmentFailure(
            f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()[-500:]}"
        )
    return done.stdout


SOURCE = Path(__file__).with_name("native_forwarder.c")


def build_native(directory: Path) -> tuple[Path | None, str]:
    """Compile the forwarders into `directory`; (binary, "") or (None, why not)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler (cc/gcc) on PATH: native reference rows left out"
    binary = directory / "native_forwarder"
    argv = [compiler, "-O2", "-pthread", "-o", str(binary), str(SOURCE)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return None, f"{' '.join(argv)} failed: {done.stderr.strip()[-300:]}"
    return binary, ""
