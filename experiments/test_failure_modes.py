"""Every failure mode the shop's catalog requires, one experiment each, generated from the catalog.

Tier 1 (web, orders, payments, postgres): latency and outage on every edge into the service, and
a kill of the service; tier 2 (redis): an outage of the edge into it. Each experiment must recover
within the service's RTO and leave the books reconciled. How much customers suffered while the
fault lasted is recorded (tolerated / degraded), not asserted: the shop promises nothing here.
"""

from __future__ import annotations

from typing import Any

import pytest

from chaos.coverage import FailureMode
from chaos.experiment import Experiment
from examples.shop.invariants import INVARIANTS

OBSERVE = "2s"
PARAMS: dict[str, dict[str, Any]] = {
    "latency": {"ms": 800, "jitter": 100},
}


@pytest.mark.chaos_matrix()
def test_failure_mode(experiment: Experiment, failure_mode: FailureMode) -> None:
    fault = failure_mode.fault(**PARAMS.get(failure_mode.kind, {}))
    with experiment.inject(fault):
        experiment.observe(OBSERVE)
    experiment.recover()
    experiment.verify(*INVARIANTS)
