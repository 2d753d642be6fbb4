"""The built-in proxy under stress: bulk bytes with live toxic changes, leaks, admin API fuzz."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faults.proxy.client import ToxiproxyClient
from faults.proxy.server import ProxyServer

LOOPBACK = "127.0.0.1"
IO_TIMEOUT = 20.0

# ---------------------------------------------------------------- shared real servers


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(IO_TIMEOUT)
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass  # the proxy reset or timed out the connection; nothing to echo any more


class EchoServer(socketserver.ThreadingTCPServer):
    """A loopback echo upstream: a real peer for the proxy to forward to."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__((LOOPBACK, 0), _EchoHandler)
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    """Read exactly `size` bytes; an early close is a test failure naming how far it got."""
    data = b""
    while len(data) < size:
        part = conn.recv(size - len(data))
        assert part, f"connection closed after {len(data)} of {size} bytes"
        data += part
    return data


def split_address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


@pytest.fixture
def proxy() -> Iterator[tuple[ProxyServer, ToxiproxyClient]]:
    server = ProxyServer(host=LOOPBACK, port=0)
    server.start()
    try:
        yield server, ToxiproxyClient(server.api_url, timeout=5.0)
    finally:
        server.stop()


# ---------------------------------------------------------------- (1) bulk, byte-exact

TOTAL_BYTES = 1 << 30
CHUNK = 256 * 1024
TOXIC_WINDOW_S = 8.0
BULK_DEADLINE_S = 90.0


def chunks(total: int, seed: int) -> Iterator[bytes]:
    """A reproducible stream made on the fly; each chunk starts with its index, so reordering,
    loss and duplication all change the digest."""
    base = random.Random(seed).randbytes(2 * CHUNK)
    view = memoryview(base)
    for index in range(total // CHUNK):
        offset = (index * 7919) % CHUNK
        yield index.to_bytes(8, "big") + view[offset : offset + CHUNK - 8]


@dataclass
class SinkResult:
    digest: str = ""
    received: int = 0
    error: BaseException | None = None


class HashingSink:
    """An upstream that hashes exactly `expected` bytes, then answers with its sha256."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.result = SinkResult()
        self.listener = socket.create_server((LOOPBACK, 0))
        self.listener.settimeout(IO_TIMEOUT)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.listener.getsockname()[1]}"

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(IO_TIMEOUT)
                digest = hashlib.sha256()
                buffer = memoryview(bytearray(1 << 20))
                while self.result.received < self.expected:
                    want = min(len(buffer), self.expected - self.result.received)
                    got = conn.recv_into(buffer, want)
                    if got == 0:
                        break
                    digest.update(buffer[:got])
                    self.result.received += got
                self.result.digest = digest.hexdigest()
                conn.sendall(self.result.digest.encode())
        except BaseException as err:  # reported to the test thread, which fails with it
            self.result.error = err
        finally:
            self.listener.close()


class ToxicToggler(threading.Thread):
    """Adds and removes toxics on a live proxy from another thread, for a bounded window."""

    KINDS = (
        ("latency", lambda r: {"latency": r.randint(0, 1), "jitter": r.randint(0, 1)}),
        ("slicer", lambda r: {"average_size": 16384, "size_variation": 8192, "delay": 0}),
        ("bandwidth", lambda r: {"rate": 2_000_000}),
    )

    def __init__(self, client: ToxiproxyClient, proxy: str, sink: HashingSink, seed: int) -> None:
        super().__init__(daemon=True)
        self.client, self.proxy, self.sink = client, proxy, sink
        self.random = random.Random(seed)
        self.changes = 0
        self.mid_stream = 0  # changes made while bytes were in flight
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + TOXIC_WINDOW_S
        active: list[str] = []
        try:
            while time.monotonic() < deadline and not self.done.is_set():
                self._step(active)
                time.sleep(self.random.uniform(0.002, 0.03))
            for name in active:
                self.client.remove_toxic(self.proxy, name)
                self._count()
        except BaseException as err:
            self.error = err

    def _step(self, active: list[str]) -> None:
        if active and (len(active) >= 2 or self.random.random() < 0.5):
            self.client.remove_toxic(self.proxy, active.pop(self.random.randrange(len(active))))
        else:
            kind, attributes = self.random.choice(self.KINDS)
            name = f"{kind}_{self.changes}"
            attrs = attributes(self.random)
            self.client.add_toxic(self.proxy, kind, attributes=attrs, name=name, stream="upstream")
            active.append(name)
        self._count()

    def _count(self) -> None:
        self.changes += 1
        self.mid_stream += 0 < self.sink.result.received < self.sink.expected


@pytest.mark.slow
def test_one_gibibyte_arrives_byte_exact_while_toxics_change(proxy) -> None:
    _, client = proxy
    sink = HashingSink(TOTAL_BYTES)
    sink.thread.start()
    info = client.create_proxy("bulk", sink.address)
    toggler = ToxicToggler(client, "bulk", sink, seed=1)
    sent = hashlib.sha256()
    started = time.monotonic()
    with socket.create_connection(split_address(info.listen), timeout=IO_TIMEOUT) as conn:
        toggler.start()
        for chunk in chunks(TOTAL_BYTES, seed=7):
            conn.sendall(chunk)
            sent.update(chunk)
            assert time.monotonic() - started < BULK_DEADLINE_S, "bulk transfer too slow"
        reply = recv_exactly(conn, 64)
    toggler.done.set()
    toggler.join(timeout=TOXIC_WINDOW_S + 10)
    sink.thread.join(timeout=IO_TIMEOUT)
    assert toggler.error is None, f"toxic change failed: {toggler.error!r}"
    assert sink.result.error is None, f"upstream failed: {sink.result.error!r}"
    assert sink.result.received == TOTAL_BYTES
    assert sink.result.digest == sent.hexdigest()
    assert reply.decode() == sent.hexdigest(), "the downstream reply was altered or lost"
    assert toggler.mid_stream >= 20, f"only {toggler.mid_stream} toxic changes were mid-stream"
    assert client.proxies()  # the admin API still answers after the run


# ---------------------------------------------------------------- (2) no leaks

SHORT_CONNECTIONS = 10_000
WARMUP_CONNECTIONS = 1_000


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def short_connections(address: tuple[str, int], count: int) -> None:
    """Open, use and close `count` connections one after another through the proxy."""
    for index in range(count):
        payload = index.to_bytes(4, "big")
        with socket.create_connection(address, timeout=5) as conn:
            conn.sendall(payload)
            assert recv_exactly(conn, len(payload)) == payload, f"connection {index}"


def settled_fds(limit: int, timeout: float = 10.0) -> int:
    """The fd count once the proxy has closed its sides of finished connections (bounded wait)."""
    deadline = time.monotonic() + timeout
    count = open_fds()
    while count > limit and time.monotonic() < deadline:
        time.sleep(0.05)
        count = open_fds()
    return count


def test_fds_and_memory_stay_flat_over_ten_thousand_connections(proxy) -> None:
    _, client = proxy
    with EchoServer() as echo:
        info = client.create_proxy("short", echo.address)
        address = split_address(info.listen)
        short_connections(address, WARMUP_CONNECTIONS)
        gc.collect()
        time.sleep(0.5)  # the proxy closes its side of the warm-up connections
        fds_before = open_fds()
        rss_before = rss_bytes()
        short_connections(address, SHORT_CONNECTIONS)
        gc.collect()
        fds_after = settled_fds(limit=int(fds_before * 1.05))
        rss_after = rss_bytes()
    assert fds_after <= fds_before * 1.05, f"fds grew from {fds_before} to {fds_after}"
    assert fds_after >= fds_before * 0.95, f"fds fell from {fds_before} to {fds_after}"
    growth = (rss_after - rss_before) / rss_before
    assert abs(growth) <= 0.05, f"RSS {rss_before} -> {rss_after} bytes ({growth:+.1%})"


# ---------------------------------------------------------------- (3) admin API fuzz

FUZZ_EXAMPLES = 1_000
REQUESTS_PER_EXAMPLE = 10
LIVE_NAMES = ["fz", "fz2", "ünï"]
NAMES = [*LIVE_NAMES, "a%20b", "x" * 300, "", "..", "fz/toxics"]
FIELDS = ["name", "type", "stream", "toxicity", "attributes", "enabled", "latency", "jitter"]
FIELDS += ["rate", "delay", "timeout", "bytes", "average_size", "size_variation"]
TOXIC_ATTRIBUTES = {
    "latency": ("latency", "jitter"),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
    "timeout": ("timeout",),
    "reset_peer": ("timeout",),
    "slicer": ("average_size", "size_variation", "delay"),
    "limit_data": ("bytes",),
}
# listen/upstream only ever name loopback (or are invalid), so the fuzz never exposes a port
LISTENS = ["127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:x", "[::1]:0", "nohost"]
UNSAFE_HEADERS = {"content-length", "transfer-encoding", "host", "connection", "expect"}

huge = st.sampled_from([10**30, -(10**30), 2**63, 2**64, -(2**63) - 1, 10**400])
numbers = st.integers(-5, 10**6) | huge | st.floats(allow_nan=True, allow_infinity=True)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
loose_dict = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), values, max_size=5)


def maybe(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value, sometimes a wrong one: valid calls get deep, junk gets tried."""
    return st.one_of(good, good, good, bad)


proxy_body = st.fixed_dictionaries(
    {
        "name": maybe(st.sampled_from(LIVE_NAMES), st.sampled_from(NAMES) | values),
        "listen": maybe(st.just("127.0.0.1:0"), st.sampled_from(LISTENS) | st.integers()),
        "upstream": maybe(st.just("127.0.0.1:1"), st.sampled_from(["127.0.0.1:99999", "x"])),
    },
    optional={"enabled": maybe(st.booleans(), values)},
)
attributes = st.dictionaries(st.sampled_from(FIELDS), maybe(st.integers(0, 1000), values))


def typed_toxic(kind: str, names: tuple[str, ...]) -> st.SearchStrategy:
    """A toxic of `kind` whose attributes are its own, mostly in range."""
    return st.fixed_dictionaries(
        {
            "type": st.just(kind),
            "attributes": st.fixed_dictionaries(
                {n: maybe(st.integers(1, 1000), values) for n in names}
            ),
        },
        optional={
            "name": maybe(st.sampled_from(["t1", "t2"]), values),
            "stream": maybe(st.sampled_from(["upstream", "downstream"]), values),
            "toxicity": maybe(st.floats(0, 1), numbers | values),
        },
    )


toxic_body = maybe(
    st.sampled_from(sorted(TOXIC_ATTRIBUTES.items())).flatmap(lambda item: typed_toxic(*item)),
    st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(sorted(TOXIC_ATTRIBUTES)), values)},
        optional={"attributes": maybe(attributes, values), "stream": values, "toxicity": values},
    ),
)
json_body = values | loose_dict | proxy_body | toxic_body
raw_body = st.sampled_from([b"{", b"[" * 5000, b"{}" * 3, b"\xff\xfe", b'{"a":NaN}', b"null"])
body = st.one_of(
    st.none(), json_body.map(lambda v: json.dumps(v).encode()), raw_body, st.binary(max_size=64)
)


def as_json(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return maybe(strategy.map(lambda v: json.dumps(v).encode()), body)


# names as a client writes them in a path: "ünï" percent-encoded (raw UTF-8 is in NAMES)
live = maybe(
    st.sampled_from(["fz", "fz2", "%C3%BCn%C3%AF"]), st.sampled_from(NAMES) | st.text(max_size=12)
)
toxic_name = maybe(st.sampled_from(["t1", "t2", "latency_downstream"]), st.text(max_size=12))
# (method, path, body) triples shaped like the real API calls, with junk mixed into each part
api_calls = st.one_of(
    st.tuples(st.just("GET"), st.sampled_from(["/version", "/proxies"]), st.none()),
    st.tuples(st.just("POST"), st.just("/proxies"), as_json(proxy_body)),
    st.tuples(st.just("POST"), st.just("/populate"), as_json(st.lists(proxy_body, max_size=3))),
    st.tuples(st.just("POST"), st.just("/reset"), st.none()),
    st.tuples(st.just("GET"), live.map("/proxies/{}".format), st.none()),
    st.tuples(
        st.just("POST"),
        live.map("/proxies/{}".format),
        as_json(st.fixed_dictionaries({"enabled": maybe(st.booleans(), values)})),
    ),
    st.tuples(st.just("DELETE"), live.map("/proxies/{}".format), st.none()),
    st.tuples(st.just("GET"), live.map("/proxies/{}/toxics".format), st.none()),
    st.tuples(st.just("POST"), live.map("/proxies/{}/toxics".format), as_json(toxic_body)),
    st.tuples(
        st.sampled_from(["GET", "POST", "DELETE"]),
        st.builds("/proxies/{}/toxics/{}".format, live, toxic_name),
        as_json(
            st.fixed_dictionaries({}, optional={"attributes": attributes, "toxicity": numbers})
        ),
    ),
)
methods = st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE"])
methods |= st.sampled_from(["CONNECT", "FOO", "get"]) | st.text("ABCXYZ", min_size=1)
real_path = st.builds(lambda call: call[1], api_calls)
path = st.one_of(
    real_path,
    st.builds(lambda p, junk: p + junk, real_path, st.sampled_from(["?x=1", "#f", "/..", "%00"])),
    st.text(max_size=30).map(lambda t: "/" + t),
)
random_calls = st.tuples(methods, path, body)
header_name = st.sampled_from(["Content-Type", "User-Agent", "Origin", "Accept", "X-Junk"]) | (
    st.text("abcdefghij-XYZ", min_size=1, max_size=12)
)
header_value = st.text(max_size=40).map(lambda v: v.replace("\r", " ").replace("\n", " "))
headers = st.lists(
    st.tuples(header_name, header_value).filter(lambda h: h[0].lower() not in UNSAFE_HEADERS),
    max_size=3,
).map(tuple)


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    path: str
    body: bytes | None
    headers: tuple[tuple[str, str], ...]
    right_host: bool

    def encode(self, host: str) -> bytes:
        target = self.path.replace("\r", "%0D").replace("\n", "%0A")
        lines = [
            f"{self.method} {target} HTTP/1.1",
            f"Host: {host if self.right_host else 'evil.example'}",
        ]
        lines += [f"{name}: {value}" for name, value in self.headers]
        lines += ["Connection: close", f"Content-Length: {len(self.body or b'')}", "", ""]
        return "\r\n".join(lines).encode("utf-8", "surrogatepass") + (self.body or b"")


requests = st.builds(
    lambda call, extra, right_host: FuzzRequest(*call, extra, right_host),
    maybe(api_calls, random_calls),
    maybe(st.just(()), headers),
    st.sampled_from((True,) * 9 + (False,)),
)


def exchange(address: tuple[str, int], request: bytes, head_only: bool) -> int:
    """Send one request on a fresh connection and return the response status code."""
    with socket.create_connection(address, timeout=5) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 1 << 16:
            part = conn.recv(65536)
            if not part:
                break
            data += part
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split()
        assert len(status_line) >= 2 and status_line[0].startswith(b"HTTP/"), f"got {data[:80]!r}"
        lengths = [
            line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
        ]
        if lengths and not head_only:
            recv_exactly(conn, int(lengths[0].split(b":", 1)[1]) - len(rest))
        return int(status_line[1])


def test_admin_api_survives_ten_thousand_fuzzed_requests(proxy) -> None:
    server, client = proxy
    address = split_address(server.api_url.split("//", 1)[1].rstrip("/"))
    host = f"{address[0]}:{address[1]}"
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(requests, min_size=REQUESTS_PER_EXAMPLE, max_size=REQUESTS_PER_EXAMPLE))
    def fuzz(batch: list[FuzzRequest]) -> None:
        for request in batch:
            status = exchange(address, request.encode(host), request.method == "HEAD")
            statuses[status] += 1
            assert status < 500, f"{status} for {request!r}"

    fuzz()
    assert sum(statuses.values()) >= FUZZ_EXAMPLES * REQUESTS_PER_EXAMPLE
    assert statuses[403] > 0, f"no request was refused for a foreign Host/Origin: {statuses}"
    assert sum(n for s, n in statuses.items() if 200 <= s < 300) > 100, f"{statuses}"
    assert statuses[201] > 0, f"the fuzz never created a proxy, so it stayed shallow: {statuses}"
    assert client.version()
    client.reset()
    assert client.create_proxy("after_fuzz", "127.0.0.1:1").name == "after_fuzz"
