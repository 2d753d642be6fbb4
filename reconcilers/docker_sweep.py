"""Remove Docker objects left by dead runs, found by our run label — for `chaos clean` and start-up.

The ledger's `compose.down` entry removes a dead run's project; this sweep catches what no ledger
describes any more (a ledger deleted by hand, a state dir of another checkout). An object is left
alone while its owner process (the `io.pytest-chaos.owner` label) lives or its run is live.
"""

from __future__ import annotations

from collections.abc import Collection

import docker.errors

from chaos.errors import EnvironmentFailure
from chaos.procfs import process_alive
from faults.container import OWNER_LABEL, RUN_LABEL, docker_client, remove_run_objects


def owner_alive(owner: str | None) -> bool:
    """Whether the "<pid>:<start ticks>" owner still runs; no or bad label counts as alive."""
    pid, _, ticks = (owner or "").partition(":")
    if not pid.isdigit():
        return True  # not written by us: never ours to judge
    return process_alive(int(pid), int(ticks) if ticks.isdigit() else None)


def dead_runs(labels: Collection[dict[str, str]], live_run_ids: Collection[str]) -> set[str]:
    """Run ids among these objects' labels whose run is not live and whose owner is gone."""
    runs: dict[str, bool] = {}
    for object_labels in labels:
        run = object_labels.get(RUN_LABEL)
        if run is None or run in live_run_ids:
            continue
        alive = owner_alive(object_labels.get(OWNER_LABEL))
        runs[run] = runs.get(run, False) or alive
    return {run for run, alive in runs.items() if not alive}


def sweep_labelled(live_run_ids: Collection[str] = ()) -> list[str]:
    """Remove containers, networks and volumes of dead runs; returns what was removed."""
    client = docker_client()
    try:
        filters = {"label": RUN_LABEL}
        labels = [c.labels for c in client.containers.list(all=True, filters=filters)]
        labels += [n.attrs.get("Labels") or {} for n in client.networks.list(filters=filters)]
        labels += [v.attrs.get("Labels") or {} for v in client.volumes.list(filters=filters)]
        removed: list[str] = []
        failed: list[str] = []
        for run in sorted(dead_runs(labels, set(live_run_ids))):
            try:
                removed += [f"run {run}: {item}" for item in remove_run_objects(client, run)]
            except docker.errors.APIError as err:
                failed.append(f"run {run}: {err}; remove it with `docker rm -f $(docker ps -aq "
                              f"--filter label={RUN_LABEL}={run})`")  # fmt: skip
        if failed:
            done = "; ".join(removed) or "nothing"
            raise EnvironmentFailure(f"removed {done}, but not: {'; '.join(failed)}")
        return removed
    finally:
        client.close()
