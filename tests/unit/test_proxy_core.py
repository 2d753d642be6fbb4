"""The sans-IO pipeline: ordering, toxicity, live changes and never dropping data."""

from __future__ import annotations

import random

import pytest

from faults.proxy.core import Link, Signal, Stream, ToxicSpec
from faults.proxy.toxics.bandwidth import Bandwidth
from faults.proxy.toxics.latency import Latency
from faults.proxy.toxics.limit_data import LimitData
from faults.proxy.toxics.timeout import Timeout


def spec(toxic, name=None, toxicity=1.0, stream=Stream.DOWNSTREAM):
    return ToxicSpec(name or toxic.type_name, stream, toxicity, toxic)


def test_empty_link_passes_data_through_at_once():
    link = Link(random.Random(0))
    link.feed(b"abc", 1.0)
    link.feed_end(1.0)
    assert link.poll(1.0) == [b"abc", Signal.EOF]
    assert link.idle


def test_latency_holds_until_due_and_keeps_order():
    link = Link(random.Random(0))
    link.install([spec(Latency(latency=100))], 0.0)
    link.feed(b"a", 0.0)
    link.feed(b"b", 0.01)
    assert link.poll(0.099) == []
    assert link.deadline() == pytest.approx(0.1)
    assert link.poll(0.1) == [b"a"]
    assert link.poll(0.2) == [b"b"]


def test_jitter_never_reorders():
    link = Link(random.Random(7))
    link.install([spec(Latency(latency=50, jitter=50))], 0.0)
    sent = [bytes([i]) for i in range(200)]
    for i, chunk in enumerate(sent):
        link.feed(chunk, i * 0.001)
    assert b"".join(link.poll(10.0)) == b"".join(sent)


def test_two_toxics_compose_in_order():
    link = Link(random.Random(0))
    link.install([spec(Latency(latency=10), "a"), spec(Latency(latency=20), "b")], 0.0)
    link.feed(b"x", 0.0)
    assert link.poll(0.029) == []
    assert link.poll(0.030) == [b"x"]


@pytest.mark.parametrize(("toxicity", "expected"), [(1.0, []), (0.0, [b"x"])])
def test_toxicity_is_drawn_once_per_link(toxicity, expected):
    link = Link(random.Random(0))
    link.install([spec(Latency(latency=1000), toxicity=toxicity)], 0.0)
    link.feed(b"x", 0.0)
    assert link.poll(0.5) == expected


def test_toxicity_half_affects_about_half_of_links():
    rng = random.Random(1)
    affected = 0
    for _ in range(1000):
        link = Link(rng)
        link.install([spec(Latency(latency=1000), toxicity=0.5)], 0.0)
        link.feed(b"x", 0.0)
        affected += link.poll(0.0) == []
    assert 430 <= affected <= 570


def test_removing_a_toxic_flushes_what_it_holds_in_order():
    link = Link(random.Random(0))
    link.install([spec(Latency(latency=1000))], 0.0)
    link.feed(b"one", 0.0)
    link.feed(b"two", 0.1)
    link.install([], 0.2)
    link.feed(b"three", 0.3)
    assert link.poll(0.3) == [b"one", b"two", b"three"]
    assert link.idle


def test_zero_rate_bandwidth_holds_everything_until_removed():
    link = Link(random.Random(0))
    link.install([spec(Bandwidth(rate=0))], 0.0)
    link.feed(b"held", 0.0)
    assert link.poll(1e6) == []
    assert link.deadline() is None
    assert link.held == 4
    link.install([], 5.0)
    assert link.poll(5.0) == [b"held"]


def test_adding_a_toxic_applies_to_later_data_only():
    link = Link(random.Random(0))
    link.feed(b"before", 0.0)
    link.install([spec(Latency(latency=100))], 0.0)
    link.feed(b"after", 0.0)
    assert link.poll(0.0) == [b"before"]
    assert link.poll(0.1) == [b"after"]


def test_updated_limit_data_keeps_its_count():
    link = Link(random.Random(0))
    link.install([spec(LimitData(bytes=10), "limit")], 0.0)
    link.feed(b"12345", 0.0)
    link.install([spec(LimitData(bytes=8), "limit")], 0.0)
    link.feed(b"6789", 0.0)
    assert link.poll(0.0) == [b"12345", b"678", Signal.CLOSE]
    assert link.finished


def test_nothing_leaves_after_close():
    link = Link(random.Random(0))
    link.install([spec(LimitData(bytes=2))], 0.0)
    link.feed(b"abc", 0.0)
    link.feed(b"def", 0.0)
    assert link.poll(1.0) == [b"ab", Signal.CLOSE]
    assert link.poll(2.0) == []


def test_timeout_removed_closes_the_connection():
    link = Link(random.Random(0))
    link.install([spec(Timeout(timeout=0))], 0.0)
    link.feed(b"dropped", 0.0)
    assert link.poll(100.0) == []
    link.install([], 100.0)
    assert link.poll(100.0) == [Signal.CLOSE]
