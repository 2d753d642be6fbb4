"""The run's journal: one versioned JSON document with every experiment, for reports and baselines."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.coverage import Coverage
from chaos.errors import ChaosError
from chaos.record import ExperimentRecord

SCHEMA = "pytest-chaos/journal"
SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema", "version", "run_id", "experiments")


@dataclass
class Journal:
    """Accumulates experiment records during a run and writes them at the end."""

    run_id: str
    seed: int
    catalog: str | None
    environment: Mapping[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    experiments: list[ExperimentRecord] = field(default_factory=list)
    coverage: Coverage | None = None

    def add(self, record: ExperimentRecord) -> None:
        self.experiments.append(record)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "seed": self.seed,
            "catalog": self.catalog,
            "environment": dict(self.environment),
            "started": self.started,
            "finished": time.time(),
            "experiments": [r.to_json() for r in self.experiments],
            "coverage": None if self.coverage is None else coverage_json(self.coverage),
        }

    def write(self, results_dir: Path) -> Path:
        """Write `journal.json` (latest) and keep a copy per run under `journals/` for baselines."""
        history = results_dir / "journals"
        history.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(), indent=2, sort_keys=True)
        _atomic_write(history / f"{self.run_id}.json", text)
        latest = results_dir / "journal.json"
        _atomic_write(latest, text)
        return latest


def coverage_json(cov: Coverage) -> dict[str, Any]:
    def mode(m: Any) -> dict[str, Any]:
        return {"service": m.service, "kind": m.kind, "target": m.target, "tier": m.tier}

    return {
        "required": len(cov.covered) + len(cov.missing),
        "ratio": round(cov.ratio, 4),
        "covered": [
            {**mode(m), "experiments": [r.test_id for r in recs]} for m, recs in cov.covered.items()
        ],
        "missing": [mode(m) for m in cov.missing],
    }


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_journal(path: Path) -> dict[str, Any]:
    """Read and check a journal; errors name the file and the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ChaosError(f"{path}: cannot read journal: {err}") from err
    except json.JSONDecodeError as err:
        raise ChaosError(f"{path}:{err.lineno}: not JSON ({err.msg})") from err
    if not isinstance(data, dict):
        raise ChaosError(f"{path}: a journal is a JSON object, got {type(data).__name__}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ChaosError(f"{path}: field {key!r} is missing; is this a pytest-chaos journal?")
    if data["schema"] != SCHEMA or data["version"] != SCHEMA_VERSION:
        raise ChaosError(
            f"{path}: field 'version': schema {data['schema']!r} v{data['version']} is not "
            f"supported (this pytest-chaos reads {SCHEMA} v{SCHEMA_VERSION})"
        )
    if not isinstance(data["experiments"], list):
        raise ChaosError(f"{path}: field 'experiments' must be a list")
    return data


def previous_journal(results_dir: Path, run_id: str) -> Path | None:
    """The most recent journal of an earlier run in the same results directory."""
    history = sorted((results_dir / "journals").glob("*.json"))
    earlier = [p for p in history if p.stem < run_id]
    return earlier[-1] if earlier else None
