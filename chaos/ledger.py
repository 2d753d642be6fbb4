"""Crash-safe record of every fault and spawned resource, written and fsynced *before* it takes effect.

One append-only JSON-lines file per run under the state dir. A run that ends cleanly removes its
file; a run that dies (SIGKILL, power loss) leaves it, and the sweeper reverts every open entry once
the owner is gone (owner = pid + process start time, so a reused pid is never mistaken for it).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import LedgerError
from chaos.procfs import process_alive, process_start_ticks
from faults.base import Recipe

STATE_DIR_ENV = "CHAOS_STATE_DIR"


def default_state_dir() -> Path:
    """Where ledgers live: $CHAOS_STATE_DIR, else $XDG_STATE_HOME/pytest-chaos, else ~/.local/state/pytest-chaos."""
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pytest-chaos"


def new_run_id() -> str:
    """Short, sortable, unique run id: UTC time + random suffix."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass
class LedgerEntry:
    """One fault or resource: open until closed; `recipe` reverts it from a fresh process."""

    id: str
    kind: str
    description: str
    recipe: Recipe
    opened_at: float
    closed_at: float | None = None


@dataclass
class LedgerFile:
    """A parsed ledger file: who owned it and which entries are still open."""

    path: Path
    run_id: str
    owner_pid: int
    owner_start_ticks: int | None
    entries: dict[str, LedgerEntry] = field(default_factory=dict)

    @property
    def open_entries(self) -> list[LedgerEntry]:
        """Entries not closed, newest first (revert order)."""
        pending = [e for e in self.entries.values() if e.closed_at is None]
        return sorted(pending, key=lambda e: e.opened_at, reverse=True)

    def owner_alive(self) -> bool:
        return process_alive(self.owner_pid, self.owner_start_ticks)


class Ledger:
    """The ledger of the current run. Thread-safe; every write is flushed and fsynced."""

    def __init__(self, state_dir: Path, run_id: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self.directory = Path(state_dir) / "ledger"
        self.path = self.directory / f"{self.run_id}.jsonl"
        self._lock = threading.Lock()
        self._open: dict[str, LedgerEntry] = {}
        self._counter = 0
        self._file: Any = None

    def __enter__(self) -> Ledger:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the run's file with an owner record."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run
        except OSError as err:
            raise LedgerError(
                f"cannot write the fault ledger {self.path}: {err}; "
                f"set {STATE_DIR_ENV} to a writable directory"
            ) from err
        pid = os.getpid()
        self._append(
            {
                "op": "run",
                "run_id": self.run_id,
                "pid": pid,
                "start_ticks": process_start_ticks(pid),
                "argv": sys.argv,
                "t": time.time(),
            }
        )

    def acquire(self, description: str, recipe: Recipe, *, kind: str = "resource") -> str:
        """Record something about to take effect; returns the entry id to release later."""
        with self._lock:
            self._counter += 1
            entry_id = f"{kind[0]}{self._counter}"
        entry = LedgerEntry(entry_id, kind, description, recipe, time.time())
        self._append(
            {
                "op": "open",
                "id": entry_id,
                "kind": kind,
                "description": description,
                "recipe": recipe.to_json(),
                "t": entry.opened_at,
            }
        )
        with self._lock:
            self._open[entry_id] = entry
        return entry_id

    def release(self, entry_id: str) -> None:
        """Mark an entry reverted / gone."""
        with self._lock:
            if self._open.pop(entry_id, None) is None:
                return
        self._append({"op": "close", "id": entry_id, "t": time.time()})

    @property
    def open_entries(self) -> list[LedgerEntry]:
        with self._lock:
            return sorted(self._open.values(), key=lambda e: e.opened_at, reverse=True)

    def close(self) -> None:
        """End the run: remove the file when nothing is open, keep it for the sweeper otherwise."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        if not self.open_entries:
            self.path.unlink(missing_ok=True)

    def _append(self, record: dict[str, Any]) -> None:
        if self._file is None:
            raise LedgerError(f"ledger {self.path} is not open; call Ledger.open() first")
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as err:
                raise LedgerError(f"cannot append to the fault ledger {self.path}: {err}") from err


def read_ledger(path: Path) -> LedgerFile:
    """Parse one ledger file; a torn last line (crash mid-write) is ignored, other garbage is an error."""
    lines = path.read_text(encoding="utf-8").splitlines()
    ledger: LedgerFile | None = None
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                break  # torn write at the moment of a crash
            raise LedgerError(f"{path}:{number}: not a ledger record ({err})") from err
        ledger = _apply_record(path, ledger, record, number)
    if ledger is None:
        raise LedgerError(f"{path}: empty ledger without an owner record")
    return ledger


def _apply_record(
    path: Path, ledger: LedgerFile | None, record: dict[str, Any], number: int
) -> LedgerFile:
    op = record.get("op")
    if op == "run":
        return LedgerFile(path, record["run_id"], int(record["pid"]), record.get("start_ticks"))
    if ledger is None:
        raise LedgerError(f"{path}:{number}: entry before the owner record")
    if op == "open":
        ledger.entries[record["id"]] = LedgerEntry(
            record["id"],
            record.get("kind", "resource"),
            record.get("description", ""),
            Recipe.from_json(record["recipe"]),
            float(record["t"]),
        )
    elif op == "close" and record["id"] in ledger.entries:
        ledger.entries[record["id"]].closed_at = float(record["t"])
    return ledger


def ledger_files(state_dir: Path) -> Iterator[Path]:
    """Every run's ledger under `state_dir`, oldest first."""
    directory = Path(state_dir) / "ledger"
    if directory.is_dir():
        yield from sorted(directory.glob("*.jsonl"))
