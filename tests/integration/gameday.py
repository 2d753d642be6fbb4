"""Run the example game day as a user does (`python -m chaos run`) and read its journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_game_day(
    tmp_path: Path, catalog: str, env: str, *pytest_args: str
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run it in a scratch results/state dir; assert it ran to the end; return output and journal."""
    results = tmp_path / "results"
    environ = {k: v for k, v in os.environ.items() if k not in ("SHOP_IMAGE", "CHAOS_ENV")}
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "run", "--env", env,
         "--catalog", f"examples/shop/{catalog}", "--results", str(results),
         "-p", "no:cacheprovider", f"--chaos-state-dir={tmp_path / 'state'}", *pytest_args],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done, json.loads((results / "journal.json").read_text())
