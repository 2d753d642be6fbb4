"""Running an image build's slow commands (debootstrap, docker import, docker build) with progress.

Each command is bounded by a timeout, runs in its own process group that is killed whole on
timeout or Ctrl-C, shows the output lines worth seeing as progress, and fails with the tail of
its output (and of debootstrap's log). Kept apart from chaos.images so that the builder there
reads as the recipe, without the subprocess plumbing every step of it shares.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from chaos.errors import EnvironmentFailure


@dataclass
class Progress:
    """One line per step with seconds elapsed since the build began; silent when quiet."""

    quiet: bool = False
    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    started: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        if not self.quiet:
            elapsed = time.monotonic() - self.started
            print(f"[chaos images {elapsed:6.1f}s] {text}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        began = time.monotonic()
        self.say(f"{what} ...")
        yield
        self.say(f"{what}: done in {time.monotonic() - began:.1f}s")


def debootstrap_echo() -> Callable[[str], bool]:
    """Echo debootstrap's warnings, errors and the first line of each phase, not every package."""
    seen: set[str] = set()

    def echo(line: str) -> bool:
        verb = line[3:].split(" ", 1)[0] if line.startswith("I: ") else ""
        fresh = bool(verb) and verb not in seen
        seen.add(verb)
        return fresh or line.startswith(("W:", "E:"))

    return echo


def _tail(lines: Sequence[str], log: Path | None) -> str:
    text = "\n".join(f"    {line}" for line in lines)
    if log is not None and log.is_file():
        logged = log.read_text(errors="replace").splitlines()[-20:]
        text += f"\n  last lines of {log.name}:\n" + "\n".join(f"    {line}" for line in logged)
    return text


@dataclass(frozen=True)
class Command:
    """A subprocess to run bounded by `timeout`; `echo` picks output lines shown as progress."""

    argv: tuple[str, ...]
    what: str
    timeout: float
    echo: Callable[[str], bool] = lambda _line: False
    log: Path | None = None  # a log file whose tail explains a failure (debootstrap's)

    def run(
        self, progress: Progress, env: Mapping[str, str], stdin: IO[bytes] | None = None
    ) -> None:
        """Run in its own process group (killed whole on timeout); raise with the output's tail."""
        tail: collections.deque[str] = collections.deque(maxlen=25)
        try:
            proc = subprocess.Popen(
                self.argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=dict(env), start_new_session=True,
            )  # fmt: skip
        except OSError as err:
            raise EnvironmentFailure(f"{self.what}: cannot run {self.argv[0]}: {err}") from err

        def pump() -> None:
            for raw in proc.stdout or ():
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                if self.echo(line):
                    progress.say(f"  {line}")

        reader = threading.Thread(target=pump, name="chaos-images-output", daemon=True)
        reader.start()
        try:
            code = proc.wait(self.timeout)
        except BaseException as err:  # timeout or Ctrl-C: never leave debootstrap running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            reader.join(5)
            if not isinstance(err, subprocess.TimeoutExpired):
                raise
            raise EnvironmentFailure(
                f"{self.what} did not finish within {self.timeout:.0f}s and was killed; "
                f"last output:\n{_tail(tail, self.log)}"
            ) from None
        reader.join(10)
        if code != 0:
            raise EnvironmentFailure(
                f"{self.what} failed (exit {code}); last output:\n{_tail(tail, self.log)}"
            )
