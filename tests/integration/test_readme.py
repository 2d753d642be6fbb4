"""README's first experiment runs as written, against the example shop, and passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def readme_first_experiment() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(# test_first_experiment\.py.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "README has one first-experiment block"
    return blocks[0]


def test_the_first_experiment_is_short() -> None:
    assert len(readme_first_experiment().strip().splitlines()) < 20


@pytest.mark.slow
def test_the_first_experiment_passes_against_the_resilient_shop(tmp_path: Path) -> None:
    code = readme_first_experiment()
    command = re.search(r"— (pytest .*)", code.splitlines()[0]).group(1).split()
    assert command[:2] == ["pytest", "test_first_experiment.py"]
    (tmp_path / "test_first_experiment.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "-m", *command[:1], str(tmp_path / "test_first_experiment.py"),
         *(arg if not arg.startswith("examples/") else str(ROOT / arg) for arg in command[2:]),
         "-p", "no:cacheprovider", f"--rootdir={tmp_path}",
         f"--chaos-state-dir={tmp_path / 'state'}", f"--chaos-results={tmp_path / 'results'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
