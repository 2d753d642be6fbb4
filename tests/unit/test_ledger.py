"""The ledger is written before faults take effect and tells live owners from dead ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chaos.errors import LedgerError
from chaos.ledger import Ledger, ledger_files, read_ledger
from chaos.procfs import process_alive, process_start_ticks
from faults.base import Recipe


def test_entries_are_on_disk_before_acquire_returns(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, run_id="r1")
    ledger.open()
    entry = ledger.acquire("pause payments", Recipe("process.signal", {"pid": 1}), kind="fault")
    on_disk = read_ledger(ledger.path)
    assert on_disk.run_id == "r1" and on_disk.owner_pid == os.getpid()
    assert [e.id for e in on_disk.open_entries] == [entry]
    assert on_disk.open_entries[0].recipe == Recipe("process.signal", {"pid": 1})
    ledger.release(entry)
    assert read_ledger(ledger.path).open_entries == []
    ledger.close()
    assert not ledger.path.exists(), "a run that ends with nothing open leaves no file"


def test_a_run_with_open_entries_keeps_its_file_for_the_sweeper(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, run_id="r2")
    ledger.open()
    first = ledger.acquire("a", Recipe("none"))
    ledger.acquire("b", Recipe("none"))
    ledger.release(first)
    ledger.close()
    kept = read_ledger(ledger.path)
    assert [e.description for e in kept.open_entries] == ["b"]
    assert list(ledger_files(tmp_path)) == [ledger.path]


def test_open_entries_are_newest_first(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        ids = [ledger.acquire(str(i), Recipe("none")) for i in range(3)]
        assert [e.id for e in read_ledger(ledger.path).open_entries] == ids[::-1]
        for entry in ids:
            ledger.release(entry)


def test_a_torn_last_line_is_ignored_but_garbage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    with Ledger(tmp_path, run_id="r3") as ledger:
        ledger.acquire("x", Recipe("none"))
    with ledger.path.open("a") as handle:
        handle.write('{"op": "open", "id": "f9", "kin')  # crash mid-write
    assert len(read_ledger(ledger.path).open_entries) == 1
    lines = ledger.path.read_text().splitlines()
    ledger.path.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    with pytest.raises(LedgerError, match=r"r3.jsonl:2: not a ledger record"):
        read_ledger(ledger.path)


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LedgerError, match="CHAOS_STATE_DIR"):
        Ledger(blocker).open()


def test_owner_liveness_uses_pid_and_start_time(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(Path.cwd())!r})
        from chaos.ledger import Ledger
        from faults.base import Recipe
        ledger = Ledger(__import__("pathlib").Path({str(tmp_path)!r}), run_id="dead")
        ledger.open()
        ledger.acquire("left behind", Recipe("none"))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    dead = read_ledger(tmp_path / "ledger" / "dead.jsonl")
    assert not dead.owner_alive()
    me = os.getpid()
    assert process_alive(me, process_start_ticks(me))
    assert not process_alive(me, (process_start_ticks(me) or 0) + 1), (
        "a reused pid is not the owner"
    )


def test_records_are_json_lines_with_the_recipe(tmp_path: Path) -> None:
    with Ledger(tmp_path, run_id="r4") as ledger:
        entry = ledger.acquire(
            "t", Recipe("proxy.enable", {"api": "http://127.0.0.1:1", "proxy": "p"})
        )
        records = [json.loads(line) for line in ledger.path.read_text().splitlines()]
        assert records[0]["op"] == "run"
        assert records[1]["recipe"] == {
            "action": "proxy.enable",
            "args": {"api": "http://127.0.0.1:1", "proxy": "p"},
        }
        ledger.release(entry)
