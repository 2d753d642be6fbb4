"""Each toxic as a sans-IO stage driven by a fake clock: exact outputs, and attribute validation."""

from __future__ import annotations

import random

import pytest

from faults.proxy.core import Link, Signal, Stream, Timed, ToxicSpec
from faults.proxy.errors import BadRequest
from faults.proxy.toxics.bandwidth import Bandwidth
from faults.proxy.toxics.latency import Latency
from faults.proxy.toxics.limit_data import LimitData
from faults.proxy.toxics.registry import TOXIC_TYPES, UnknownToxicType, parse_toxic, update_toxic
from faults.proxy.toxics.reset_peer import ResetPeer
from faults.proxy.toxics.slicer import Slicer
from faults.proxy.toxics.slow_close import SlowClose
from faults.proxy.toxics.timeout import Timeout


def stage(toxic, seed=0):
    s = toxic.stage(random.Random(seed))
    s.start(0.0)
    return s


def run(s, now):
    return [(round(t.at, 6), t.item) for t in s.pull(now)]


def test_latency_delays_each_chunk():
    s = stage(Latency(latency=100))
    s.push(b"a", 1.0)
    s.push(Signal.EOF, 1.05)
    assert run(s, 1.0999) == []
    assert run(s, 2.0) == [(1.1, b"a"), (1.1, Signal.EOF)]


def test_latency_jitter_stays_within_bounds():
    s = stage(Latency(latency=100, jitter=10), seed=3)
    for i in range(100):
        s.push(bytes([i]), float(i))
    times = [t.at - i for i, t in enumerate(s.pull(1000.0))]
    assert all(0.09 - 1e-9 <= t <= 0.11 + 1e-9 for t in times)
    assert len(set(times)) > 5


def test_bandwidth_releases_at_the_rate_in_100ms_slices():
    s = stage(Bandwidth(rate=10))  # 10 KB/s = 1000 bytes per 100 ms
    s.push(b"x" * 2500, 0.0)
    assert run(s, 10.0) == [(0.1, b"x" * 1000), (0.2, b"x" * 1000), (0.25, b"x" * 500)]
    s.push(b"y" * 100, 0.0)  # queued behind the earlier bytes
    assert run(s, 10.0) == [(0.26, b"y" * 100)]


def test_slow_close_delays_only_the_eof():
    s = stage(SlowClose(delay=500))
    s.push(b"data", 1.0)
    s.push(Signal.EOF, 2.0)
    assert run(s, 2.4) == [(1.0, b"data")]
    assert run(s, 2.5) == [(2.5, Signal.EOF)]


def test_timeout_drops_data_and_closes_after_silence():
    s = stage(Timeout(timeout=100))
    s.push(b"lost", 0.05)
    assert s.deadline() == pytest.approx(0.15)
    assert run(s, 0.149) == []
    assert run(s, 0.2) == [(0.15, Signal.CLOSE)]


def test_timeout_zero_holds_forever():
    s = stage(Timeout(timeout=0))
    s.push(b"lost", 0.0)
    assert s.deadline() is None
    assert run(s, 1e9) == []
    assert [t.item for t in s.drain(5.0)] == [Signal.CLOSE]


def test_reset_peer_fires_after_first_data():
    s = stage(ResetPeer(timeout=50))
    assert s.deadline() is None
    s.push(b"x", 1.0)
    assert run(s, 1.049) == []
    assert run(s, 1.05) == [(1.05, Signal.RESET)]


def test_reset_peer_removed_before_firing_hands_data_on():
    s = stage(ResetPeer(timeout=50))
    s.push(b"x", 1.0)
    assert s.drain(1.01) == [Timed(1.0, b"x")]


def test_slicer_cuts_into_small_pieces_spaced_by_delay():
    s = stage(Slicer(average_size=4, delay=1000))
    s.push(b"0123456789abcdef", 0.0)
    out = run(s, 10.0)
    assert [item for _, item in out] == [b"0123", b"4567", b"89ab", b"cdef"]
    assert [at for at, _ in out] == [0.0, 0.001, 0.002, 0.003]


def test_slicer_variation_keeps_every_byte():
    s = stage(Slicer(average_size=10, size_variation=5), seed=9)
    data = bytes(range(256)) * 4
    s.push(data, 0.0)
    pieces = [item for _, item in run(s, 1.0)]
    assert b"".join(pieces) == data
    assert max(len(p) for p in pieces) <= 10


def test_limit_data_cuts_at_exactly_n_bytes():
    s = stage(LimitData(bytes=5))
    s.push(b"abc", 0.0)
    s.push(b"defg", 0.1)
    assert run(s, 1.0) == [(0.0, b"abc"), (0.1, b"de"), (0.1, Signal.CLOSE)]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"type": "latency", "attributes": {"latency": -1}}, "between 0"),
        ({"type": "latency", "attributes": {"latency": "100"}}, "integer"),
        ({"type": "latency", "attributes": {"latency": True}}, "integer"),
        ({"type": "latency", "attributes": {"latency": 1.5}}, "integer"),
        ({"type": "latency", "attributes": {"latency": 10**30}}, "between 0"),
        ({"type": "latency", "attributes": []}, "JSON object"),
        ({"type": "latency", "stream": "sideways"}, "upstream or downstream"),
        ({"type": "latency", "toxicity": 2}, "toxicity"),
        ({"type": "slicer", "attributes": {"average_size": 0}}, "average_size"),
        ({"type": "latency", "name": ""}, None),
        ([], "JSON object"),
    ],
)
def test_bad_toxic_json_is_a_bad_request(body, fragment):
    if fragment is None:  # an empty name falls back to the default name
        assert parse_toxic(body).name == "latency_downstream"
        return
    with pytest.raises(BadRequest, match=fragment):
        parse_toxic(body)


def test_unknown_type_lists_valid_names():
    with pytest.raises(UnknownToxicType) as info:
        parse_toxic({"type": "lag"})
    for name in TOXIC_TYPES:
        assert name in str(info.value)


def test_defaults_follow_toxiproxy():
    parsed = parse_toxic({"type": "bandwidth", "attributes": {"rate": 100}})
    assert parsed.to_json() == {
        "name": "bandwidth_downstream",
        "type": "bandwidth",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"rate": 100},
    }


def test_update_keeps_unset_attributes_and_refuses_type_change():
    base = parse_toxic({"type": "latency", "attributes": {"latency": 100, "jitter": 5}})
    new = update_toxic(base, {"attributes": {"latency": 200}, "toxicity": 0.5})
    assert new.toxic == Latency(latency=200, jitter=5)
    assert new.toxicity == 0.5
    with pytest.raises(BadRequest):
        update_toxic(base, {"type": "timeout"})


def test_link_uses_spec_stream_agnostic():
    link = Link(random.Random(0))
    link.install([ToxicSpec("s", Stream.UPSTREAM, 1.0, SlowClose(delay=10))], 0.0)
    link.feed_end(0.0)
    assert link.poll(0.0) == []
    assert link.poll(0.01) == [Signal.EOF]
