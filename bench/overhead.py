"""How much time the framework itself adds to an experiment, beyond what the experiment declares.

Runs N experiments (a no-op fault on the ground-truth service, baseline B, observe O) against a real
local environment and prints, per experiment: wall time, declared time (baseline + observe), time
spent waiting for steady state in recover(), and the overhead = wall - declared - recover wait
(reconcile, probe start/stop, ledger fsyncs, fault apply/revert, impact computation, record).
Target: overhead ≤ 0.5 s per experiment. Usage: python bench/overhead.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaos.catalog import load_catalog  # noqa: E402
from chaos.environments.local import LocalEnvironment  # noqa: E402
from chaos.experiment import Experiment, ExperimentSettings  # noqa: E402
from chaos.ledger import Ledger  # noqa: E402
from tests.integration.scripted import FIXTURES, scripted  # noqa: E402

BASELINE = 0.5
OBSERVE = 0.5


def one_experiment(env: LocalEnvironment, ledger: Ledger, number: int) -> dict[str, float]:
    started = time.monotonic()
    repairs = env.reconcile()
    exp = Experiment(
        env,
        ledger,
        name=f"bench-{number}",
        settings=ExperimentSettings(baseline=BASELINE),
        repairs=repairs,
    )
    exp.baseline()
    with exp.inject(scripted("svc", fail_customers=[])):
        exp.observe(OBSERVE)
    exp.recover(rto="5s")
    record = exp.finish()
    wall = time.monotonic() - started
    recover_wait = sum(p.seconds for p in record.phases if p.name == "recover")
    declared = BASELINE + OBSERVE
    return {
        "wall": wall,
        "declared": declared,
        "recover_wait": recover_wait,
        "overhead": wall - declared - recover_wait,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    catalog = load_catalog(FIXTURES / "groundtruth" / "chaos.yaml")
    with tempfile.TemporaryDirectory() as state:
        ledger = Ledger(Path(state))
        ledger.open()
        env = LocalEnvironment.from_catalog(
            catalog, run_id=ledger.run_id, state_dir=Path(state) / "run", tracker=ledger
        )
        t0 = time.monotonic()
        env.start()
        startup = time.monotonic() - t0
        try:
            rows = [one_experiment(env, ledger, n) for n in range(args.runs)]
        finally:
            env.stop()
            ledger.close()
    print(f"environment start (1 service + proxy): {startup:.3f} s")
    print(
        f"{'run':>3}  {'wall s':>7}  {'declared s':>10}  {'recover wait s':>14}  {'overhead s':>10}"
    )
    for n, row in enumerate(rows):
        print(
            f"{n:>3}  {row['wall']:7.3f}  {row['declared']:10.3f}  {row['recover_wait']:14.3f}  "
            f"{row['overhead']:10.3f}"
        )
    overheads = [r["overhead"] for r in rows]
    median, worst = statistics.median(overheads), max(overheads)
    print(
        f"overhead per experiment: median {median:.3f} s, max {worst:.3f} s "
        f"(target ≤ 0.5 s: {'PASS' if worst <= 0.5 else 'MISS'}); "
        f"overhead ÷ declared time: {median / (BASELINE + OBSERVE):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
