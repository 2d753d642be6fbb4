"""Reading /proc: one parser of process identity (pid + start time), shared by ledger, supervisor and recipes."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that identify a process and its group."""

    pid: int
    state: str
    pgrp: int
    session: int
    start_ticks: int


def proc_stat(pid: int) -> ProcStat | None:
    """Read /proc/<pid>/stat (start time = field 22, in clock ticks since boot); None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return ProcStat(pid, fields[0], int(fields[2]), int(fields[3]), int(fields[19]))


def signal_group(pgid: int, signum: int) -> None:
    """Signal a process group; a group that no longer exists is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def process_start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot, None if it is gone."""
    stat = proc_stat(pid)
    return None if stat is None else stat.start_ticks


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """True when `pid` runs (not a zombie) and is the recorded process, not a reused pid."""
    stat = proc_stat(pid)
    if stat is None or stat.state == "Z":
        return False
    return start_ticks is None or stat.start_ticks == start_ticks
