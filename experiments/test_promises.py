"""What the shop promises its customers under specific faults, asserted with `expect`.

These are the experiments that tell the weak shop from the resilient one: each exposes one of the
deliberate weaknesses (see examples/shop/README.md and experiments/conftest.py).
"""

from __future__ import annotations

import pytest

from chaos.experiment import Experiment
from examples.shop.invariants import INVARIANTS
from faults.network import latency
from faults.outage import outage


@pytest.mark.weakness("a")
@pytest.mark.chaos(rto="15s")
def test_checkout_survives_very_slow_payments(experiment: Experiment) -> None:
    """Payments answering after 3 s: orders gives up after 1 s and leaves the order pending."""
    with experiment.inject(latency("orders -> payments", ms=3000)):
        experiment.observe("3s")
    experiment.recover()
    experiment.verify(*INVARIANTS)  # every order left pending was then settled exactly once
    experiment.expect("checkout", max_error_rate=0.05, p95="1.5s")


@pytest.mark.weakness("c")
@pytest.mark.chaos(rto="10s")
def test_browse_survives_cache_outage(experiment: Experiment) -> None:
    """Redis unreachable: the catalogue is read from orders instead."""
    with experiment.inject(outage("web -> redis")):
        experiment.observe("2s")
    experiment.recover()
    experiment.verify(*INVARIANTS)
    experiment.expect("browse", max_error_rate=0.05, p95="300ms")
    experiment.expect("checkout", max_error_rate=0.0)
