"""Probes against a real local HTTP server whose failures the tests script exactly."""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from chaos.catalog import HttpStep, Journey, Slo
from chaos.errors import CatalogError, ConfigError, ExperimentMisuse
from chaos.impact import time_to_recover
from chaos.probes import (
    JourneyContext,
    JourneyFailed,
    Probe,
    ProbeSet,
    check_steady_state,
    journey_action,
    wait_for_steady_state,
)

WAIT = 5.0  # upper bound of every wait in this file


@dataclass
class Script:
    """How the server answers; the tests change it while probes run."""

    fail_every: int = 0  # answer 500 to every n-th request of each customer
    status: int = 200  # answer for everything else
    delay: float = 0.0
    reset: bool = False  # close the connection with RST, no answer
    raw: bytes = b""  # send these bytes instead of HTTP, then close
    counts: Counter[str] = field(default_factory=Counter)
    bodies: list[object] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def do_GET(self) -> None:
        self._answer(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self._answer(json.loads(self.rfile.read(length)) if length else None)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, body: object) -> None:
        script = self.server.script
        parts = urlsplit(self.path)
        customer = parse_qs(parts.query).get("customer", [parts.path.rsplit("/", 1)[-1]])[0]
        with script.lock:
            script.counts[customer] += 1
            count = script.counts[customer]
            script.bodies.append(body)
        if script.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if script.raw:
            self.wfile.write(script.raw)
            self.close_connection = True
            return
        time.sleep(script.delay)
        failing = script.fail_every and count % script.fail_every == 0
        payload = json.dumps({"customer": customer, "n": count, "echo": body}).encode()
        self.send_response(500 if failing else script.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script = Script()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def endpoint(self, service: str) -> str:
        if service != "shop":
            raise KeyError(service)
        return self.url

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(WAIT)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    try:
        yield srv
    finally:
        if srv._thread.is_alive():
            srv.close()


def journey(
    name="buy", *, steps=None, call=None, customers=2, interval=0.01, timeout=1.0, slo=None
):
    if steps is None and call is None:
        steps = (HttpStep("GET", "shop", "/c/{customer}"),)
    return Journey(
        name=name,
        description="test journey",
        tier=1,
        services=("shop",),
        customers=customers,
        interval=interval,
        timeout=timeout,
        steps=tuple(steps or ()),
        call=call,
        slo=slo or Slo(success=1.0),
    )


def probe_for(spec: Journey, srv: ScriptedServer, **bounds: float) -> Probe:
    return Probe(
        spec.name,
        journey_action(spec, srv.endpoint),
        customers=spec.customers,
        interval=spec.interval,
        timeout=spec.timeout,
        endpoint=srv.endpoint,
        **bounds,
    )


def wait_until(predicate, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# -- HTTP steps ---------------------------------------------------------------------------


def test_every_tenth_request_per_customer_fails_and_max_samples_stops_the_probe(server):
    server.script.fail_every = 10
    probe = probe_for(journey(customers=3, interval=0.002), server, max_samples=90)
    probe.start()
    wait_until(lambda: not probe.running)
    assert probe.stop(WAIT)
    samples = probe.samples()
    assert len(samples) == 90 and probe.exhausted == "max_samples"
    for customer in range(3):
        mine = [s for s in samples if s.customer == customer]
        assert [not s.ok for s in mine] == [(k + 1) % 10 == 0 for k in range(len(mine))]
        assert {s.error for s in mine if not s.ok} <= {"http-500"}
        assert [s.value["n"] for s in mine if s.ok] == [
            k + 1 for k in range(len(mine)) if (k + 1) % 10
        ]
    assert sum(not s.ok for s in samples) >= 6
    assert samples == sorted(samples, key=lambda s: (s.t, s.customer))
    assert probe.last_sample_time == samples[-1].t


def test_slow_answers_are_timeouts_of_the_journey_budget(server):
    server.script.delay = 0.5
    probe = probe_for(journey(customers=2, timeout=0.1), server, max_samples=4)
    probe.start()
    wait_until(lambda: not probe.running)
    samples = probe.samples()
    assert [s.error for s in samples] == ["timeout"] * 4
    assert all(0.1 <= s.latency < 0.3 for s in samples), [s.latency for s in samples]
    assert "timed out" in probe.error_messages()["timeout"]


def test_unexpected_status_and_reset_connections(server):
    steps = (HttpStep("GET", "shop", "/c/{customer}", expect=(201,)),)
    probe = probe_for(journey(steps=steps, customers=1), server, max_samples=2)
    probe.start()
    wait_until(lambda: not probe.running)
    assert [s.error for s in probe.samples()] == ["http-200", "http-200"]
    assert "expected 201" in probe.error_messages()["http-200"]
    server.script.reset = True
    probe = probe_for(journey(customers=1), server, max_samples=2)
    probe.start()
    wait_until(lambda: not probe.running)
    assert [s.error for s in probe.samples()] == ["connection-reset", "connection-reset"]
    server.script.reset, server.script.raw = False, b"NOT HTTP AT ALL\r\n\r\n"
    probe = probe_for(journey(customers=1), server, max_samples=1)
    probe.start()
    wait_until(lambda: not probe.running)
    assert [s.error for s in probe.samples()] == ["http-protocol"]


def test_a_server_that_goes_away_is_connection_refused(server):
    probe = probe_for(journey(customers=2, interval=0.01), server)
    probe.start()
    try:
        wait_until(lambda: len(probe.samples()) >= 4)
        server.close()
        gone = time.monotonic()
        wait_until(lambda: len([s for s in probe.samples(since=gone + 0.05)]) >= 4)
    finally:
        assert probe.stop(WAIT)
    before, after = probe.samples()[:4], probe.samples(since=gone + 0.05)
    assert all(s.ok for s in before)
    assert {s.error for s in after} == {"connection-refused"}
    assert probe.exhausted is None


def test_placeholders_fill_path_and_json_body(server):
    steps = (HttpStep("POST", "shop", "/orders/{customer}", json={"who": "c{customer}-{seq}"}),)
    probe = probe_for(journey(steps=steps, customers=2), server, max_samples=4)
    probe.start()
    wait_until(lambda: not probe.running)
    samples = probe.samples()
    assert all(s.ok for s in samples)
    for customer in (0, 1):
        sent = [s.value["echo"]["who"] for s in samples if s.customer == customer]
        assert sent == [f"c{customer}-{seq}" for seq in range(1, len(sent) + 1)]


def test_max_duration_stops_the_probe(server):
    probe = probe_for(journey(customers=2, interval=0.01), server, max_duration=0.3)
    started = time.monotonic()
    probe.start()
    wait_until(lambda: not probe.running, timeout=2.0)
    assert 0.3 <= time.monotonic() - started < 1.5
    assert probe.exhausted == "max_duration"
    assert 10 <= len(probe.samples()) <= 80


def test_customers_are_staggered_over_one_interval(server):
    probe = probe_for(journey(customers=4, interval=0.2), server, max_samples=4)
    probe.start()
    wait_until(lambda: not probe.running)
    firsts = probe.samples()
    assert [s.customer for s in firsts] == [0, 1, 2, 3]
    gaps = [b.t - a.t for a, b in itertools.pairwise(firsts)]
    assert all(0.03 <= gap <= 0.12 for gap in gaps), gaps


def test_bad_probe_settings_are_refused():
    with pytest.raises(ConfigError, match="customers must be positive"):
        Probe("x", lambda ctx: None, customers=0, interval=1, timeout=1, endpoint=str)
    probe = Probe("x", lambda ctx: None, customers=1, interval=1, timeout=1, endpoint=str)
    probe.start()
    with pytest.raises(ExperimentMisuse, match="already started"):
        probe.start()
    assert probe.stop(WAIT)


# -- Python journeys ----------------------------------------------------------------------


def place_order(ctx: JourneyContext) -> object:
    """A journey as users write them: calls the shop, checks the answer, returns a value."""
    assert ctx.endpoint("shop").startswith("http://127.0.0.1:")
    answer = ctx.http("POST", "shop", f"/orders/{ctx.customer}", json={"seq": ctx.seq})
    data = answer.json()
    if data["echo"]["seq"] != ctx.seq:
        raise JourneyFailed("wrong-echo", f"sent {ctx.seq}, got {data['echo']}")
    return (ctx.customer, ctx.seq)


def crashing_journey(ctx: JourneyContext) -> object:
    raise ValueError(f"customer {ctx.customer} cannot pay")


def dawdling_journey(ctx: JourneyContext) -> object:
    time.sleep(ctx.remaining() + 0.02)  # ignores its budget: the customer gave up anyway
    return "too late"


def test_python_journey_records_its_value(server):
    spec = journey(call=f"{__name__}:place_order", customers=2)
    probe = probe_for(spec, server, max_samples=6)
    probe.start()
    wait_until(lambda: not probe.running)
    samples = probe.samples()
    assert all(s.ok for s in samples)
    for customer in (0, 1):
        values = [s.value for s in samples if s.customer == customer]
        assert values == [(customer, seq) for seq in range(1, len(values) + 1)]
    assert {s.customer for s in samples} == {0, 1}


def test_python_journey_failures_become_error_kinds(server):
    server.script.status = 503
    failing = probe_for(journey(call=f"{__name__}:place_order"), server, max_samples=2)
    crashing = probe_for(journey(call=f"{__name__}:crashing_journey"), server, max_samples=2)
    spec = journey(call=f"{__name__}:dawdling_journey", timeout=0.05)
    dawdling = probe_for(spec, server, max_samples=2)
    for probe in (failing, crashing, dawdling):
        probe.start()
    wait_until(lambda: not any(p.running for p in (failing, crashing, dawdling)))
    assert {s.error for s in failing.samples()} == {"http-503"}
    assert {s.error for s in crashing.samples()} == {"ValueError"}
    assert [(s.error, s.value) for s in dawdling.samples()] == [("timeout", None)] * 2
    assert crashing.error_messages()["ValueError"].endswith("cannot pay")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("no_colon", "must look like 'package.module:function'"),
        ("no_such_module_xyz:f", "cannot be imported"),
        (f"{__name__}:missing", "has no 'missing'"),
        (f"{__name__}:WAIT", "is a float, not a function"),
    ],
)
def test_bad_call_paths_are_catalog_errors(call, message):
    with pytest.raises(CatalogError, match=message) as info:
        journey_action(journey("pay", call=call), str)
    assert info.value.field == "journeys.pay.call"
    assert "journey 'pay'" in str(info.value) and call in str(info.value)


def test_a_journey_needs_steps_or_call():
    with pytest.raises(CatalogError, match="neither steps nor call"):
        journey_action(journey(steps=(), call=None), str)


# -- ProbeSet and steady state ------------------------------------------------------------


def test_probe_set_runs_every_journey(server):
    journeys = [journey("buy"), journey("browse", customers=1)]
    with ProbeSet.from_journeys(journeys, server.endpoint, max_samples=6) as probes:
        assert probes.names == ("buy", "browse")
        wait_until(lambda: not any(p.running for p in probes))
    everything = probes.all_samples()
    assert {name: len(s) for name, s in everything.items()} == {"buy": 6, "browse": 6}
    assert probes.samples("buy") == everything["buy"]
    later = everything["buy"][3].t
    assert probes.samples("buy", since=later) == everything["buy"][3:]
    with pytest.raises(ExperimentMisuse, match=r"'nope'.*buy"):
        probes.samples("nope")


def test_steady_state_is_seen_after_recovery_and_ttr_matches_the_truth(server):
    spec = journey(customers=4, interval=0.02, slo=Slo(success=0.99, p95=0.5))
    server.script.status = 503
    with ProbeSet.from_journeys([spec], server.endpoint) as probes:
        since = time.monotonic()
        wait_until(lambda: len(probes.samples("buy")) >= 8)
        verdict = check_steady_state(probes, {"buy": spec.slo}, since=since)["buy"]
        assert not verdict.holds and verdict.success_ratio == 0.0
        server.script.status = 200
        healed = time.monotonic()
        seen = wait_for_steady_state(
            probes, {"buy": spec.slo}, since=since, timeout=WAIT, poll=0.01
        )
        samples = probes.samples("buy")
    assert seen is not None and healed < seen < healed + 1.0
    ttr = time_to_recover(samples, since, spec.slo)
    truth = healed - since
    assert truth - 0.01 <= ttr <= truth + spec.interval, (ttr, truth)


def test_wait_for_steady_state_gives_up_after_its_timeout(server):
    spec = journey(customers=2, interval=0.02)
    server.script.fail_every = 2
    with ProbeSet.from_journeys([spec], server.endpoint) as probes:
        started = time.monotonic()
        seen = wait_for_steady_state(
            probes, {"buy": spec.slo}, since=started, timeout=0.3, poll=0.05
        )
        waited = time.monotonic() - started
    assert seen is None
    assert 0.3 <= waited < 0.3 + 0.05 + 0.2
