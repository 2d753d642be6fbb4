"""Runs split over pytest-xdist workers: what each worker sends home and how the controller merges it.

Works without pytest or xdist: the plugin passes the plain dicts xdist carries (`workerinput`,
`workeroutput`) and the collected test ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.errors import ChaosError, ParallelRunConflict
from chaos.record import ExperimentRecord

KEY = "pytest_chaos"  # our entry in xdist's workerinput and workeroutput
SCHEMA = "pytest-chaos/worker-output"
SCHEMA_VERSION = 1
ONE_WORKER = "run the chaos tests on one worker (`-n 0` or `-n 1`)"


@dataclass(frozen=True)
class WorkerRole:
    """This process is worker `worker_id` of `count`, in the controller's run `run_id`."""

    worker_id: str
    count: int
    run_id: str  # the controller's: the journal's run id
    seed: int  # the controller's: one seed for the whole run, so `--chaos-seed` replays it

    @property
    def own_run_id(self) -> str:
        """The worker's ledger, state folder and Compose project: the run id plus the worker id."""
        return f"{self.run_id}-{self.worker_id}"

    @classmethod
    def from_workerinput(cls, workerinput: Mapping[str, Any]) -> WorkerRole | None:
        sent = workerinput.get(KEY)
        if sent is None:  # a controller without pytest-chaos: nothing to share
            return None
        return cls(
            worker_id=str(workerinput["workerid"]),
            count=int(workerinput["workercount"]),
            run_id=str(sent["run_id"]),
            seed=int(sent["seed"]),
        )


def worker_input(run_id: str, seed: int) -> dict[str, Any]:
    """What the controller hands every worker (xdist `node.workerinput[KEY]`)."""
    return {"run_id": run_id, "seed": seed}


def worker_output(
    worker_id: str, records: Iterable[ExperimentRecord], environment: Mapping[str, str]
) -> str:
    """What a worker sends home at its session end: the journal's JSON of each experiment."""
    return json.dumps(
        {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "worker": worker_id,
            "environment": dict(environment),
            "experiments": [record.to_json() for record in records],
        }
    )


@dataclass(frozen=True)
class WorkerReport:
    """One worker's experiments and the facts of the environment it ran them on."""

    worker_id: str
    environment: Mapping[str, str]
    records: tuple[ExperimentRecord, ...]


def read_worker_output(worker_id: str, text: str) -> WorkerReport:
    """Parse what `worker_output` wrote; errors name the worker and what is wrong."""
    try:
        data = json.loads(text)
    except (TypeError, json.JSONDecodeError) as err:
        raise ChaosError(f"worker {worker_id}: its experiments are not JSON ({err})") from err
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ChaosError(f"worker {worker_id}: sent something that is not {SCHEMA}")
    if data.get("version") != SCHEMA_VERSION:
        raise ChaosError(
            f"worker {worker_id}: {SCHEMA} v{data.get('version')} is not v{SCHEMA_VERSION}; "
            "the controller and the workers run different pytest-chaos versions"
        )
    records = tuple(ExperimentRecord.from_json(item) for item in data["experiments"])
    return WorkerReport(worker_id, dict(data.get("environment") or {}), records)


class WorkerMerge:
    """Controller side: each worker's experiments, taken once, merged in collection order."""

    def __init__(self) -> None:
        self._reports: dict[str, WorkerReport] = {}
        self._problems: dict[str, str] = {}
        self._order: dict[str, int] = {}

    def collected(self, test_ids: Sequence[str]) -> None:
        """The test ids in collection order (every worker collects the same ones)."""
        if not self._order:
            self._order = {test_id: index for index, test_id in enumerate(test_ids)}

    def node_down(
        self, worker_id: str, output: Mapping[str, Any] | None, error: object | None
    ) -> None:
        """A worker finished or died; `output` is its xdist workeroutput (None if it crashed)."""
        if worker_id in self._reports:  # xdist reports a node down twice after Ctrl-C
            return
        text = (output or {}).get(KEY)
        if text is None:
            cause = f"went down ({error})" if error else "finished without sending anything"
            self._problems[worker_id] = (
                f"chaos: worker {worker_id} {cause}; any experiments it ran are missing from the journal"
            )
            return
        try:
            self._reports[worker_id] = read_worker_output(worker_id, text)
        except ChaosError as err:
            self._problems[worker_id] = f"chaos: {err}; they are missing from the journal"
        else:
            self._problems.pop(worker_id, None)

    @property
    def workers(self) -> list[str]:
        return sorted(self._reports, key=_worker_number)

    def records(self) -> list[ExperimentRecord]:
        """Every worker's records, in the order a serial run would have produced them."""
        merged = [record for w in self.workers for record in self._reports[w].records]
        last = len(self._order)
        return sorted(merged, key=lambda record: self._order.get(record.test_id, last))

    def environment(self) -> dict[str, str]:
        """The workers' environment facts: shared values once, differing ones per worker."""
        return merge_environments({w: self._reports[w].environment for w in self.workers})

    def lines(self) -> list[str]:
        """Terminal-summary lines: where the experiments came from, and what is missing."""
        lines = []
        count = sum(len(report.records) for report in self._reports.values())
        if count:
            lines.append(
                f"chaos: {count} experiment(s) merged from {len(self._reports)} pytest-xdist "
                f"worker(s) ({', '.join(self.workers)})"
            )
        return lines + [self._problems[w] for w in sorted(self._problems, key=_worker_number)]


def merge_environments(per_worker: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """One fact per key: the value all workers share, else `gw0: …; gw1: …`."""
    keys = list(dict.fromkeys(key for facts in per_worker.values() for key in facts))
    merged: dict[str, str] = {}
    for key in keys:
        values = {w: facts[key] for w, facts in per_worker.items() if key in facts}
        distinct = set(values.values())
        merged[key] = (
            distinct.pop()
            if len(distinct) == 1
            else "; ".join(f"{w}: {v}" for w, v in values.items())
        )
    if per_worker:
        merged["xdist_workers"] = ", ".join(per_worker)
    return merged


def check_parallel_safe(kind: str, fixed: Sequence[str], fix: str, role: WorkerRole | None) -> None:
    """Refuse an environment whose copies on several workers would collide on `fixed` things."""
    if role is None or role.count < 2 or not fixed:
        return
    raise ParallelRunConflict(
        f"--chaos-env {kind} under pytest-xdist with {role.count} workers: every worker starts "
        f"its own copy of the environment, and these are fixed, so the copies would collide: "
        f"{', '.join(fixed)}. Either {fix}, or {ONE_WORKER}"
    )


def _worker_number(worker_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in worker_id if ch.isdigit())
    return (int(digits) if digits else -1, worker_id)
