"""Toxics on real loopback sockets, each applied mid-connection, with measured tolerances."""

from __future__ import annotations

import contextlib
import errno
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from faults.proxy.client import ToxiproxyClient
from faults.proxy.server import ProxyServer

TIMEOUT = 10.0


class Upstream:
    """A loopback TCP server running `behaviour(conn)` per connection in a thread."""

    def __init__(self, behaviour: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.behaviour = behaviour
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(TIMEOUT)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.behaviour(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def echo(conn: socket.socket) -> None:
    for _ in range(10_000_000):
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def send_on_request(size: int) -> Callable[[socket.socket], None]:
    """Wait for one byte, send `size` bytes, close."""

    def behaviour(conn: socket.socket) -> None:
        conn.recv(1)
        conn.sendall(b"z" * size)

    return behaviour


@pytest.fixture
def server() -> Iterator[ProxyServer]:
    with ProxyServer(port=0) as srv:
        yield srv


@pytest.fixture
def client(server: ProxyServer) -> ToxiproxyClient:
    return ToxiproxyClient(server.api_url)


def proxied(client: ToxiproxyClient, behaviour: Callable[[socket.socket], None], request):
    upstream = Upstream(behaviour)
    request.addfinalizer(upstream.close)
    info = client.create_proxy("edge", upstream.address)
    return info, upstream


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        got += chunk
    assert got == payload
    return time.perf_counter() - start


def read_all(sock: socket.socket) -> bytes:
    out = bytearray()
    for _ in range(1_000_000):
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(out)
        out += chunk
    raise AssertionError("stream did not end")


def test_passthrough_then_latency_100ms_within_5ms_at_p99(client, request):
    info, _ = proxied(client, echo, request)
    with connect(info.port) as sock:
        direct = statistics.median(round_trip(sock) for _ in range(20))
        client.add_toxic("edge", "latency", attributes={"latency": 100})
        samples = sorted(round_trip(sock) - direct for _ in range(30))
    p99 = samples[int(len(samples) * 0.99) - 1]
    assert abs(samples[0] - 0.1) < 0.005
    assert abs(p99 - 0.1) < 0.005


def test_bandwidth_within_10_percent_over_1mb(client, request):
    size = 1_000_000
    info, _ = proxied(client, send_on_request(size), request)
    with connect(info.port) as sock:
        client.add_toxic("edge", "bandwidth", attributes={"rate": 2000})  # 2 MB/s
        start = time.perf_counter()
        sock.sendall(b"g")
        data = read_all(sock)
        elapsed = time.perf_counter() - start
    assert len(data) == size
    assert 0.5 * 0.9 <= elapsed <= 0.5 * 1.1


def test_limit_data_closes_after_exactly_n_bytes(client, request):
    info, _ = proxied(client, send_on_request(100_000), request)
    with connect(info.port) as sock:
        client.add_toxic("edge", "limit_data", attributes={"bytes": 12345})
        sock.sendall(b"g")
        assert read_all(sock) == b"z" * 12345


def test_slicer_delivers_the_same_bytes_in_smaller_writes(client, request):
    info, _ = proxied(client, echo, request)
    payload = bytes(range(256)) * 40
    with connect(info.port) as sock:
        round_trip(sock)
        client.add_toxic(
            "edge", "slicer", attributes={"average_size": 100, "size_variation": 20, "delay": 500}
        )
        sock.sendall(payload)
        reads = []
        while sum(map(len, reads)) < len(payload):
            reads.append(sock.recv(65536))
            assert reads[-1]
    assert b"".join(reads) == payload
    assert len(reads) >= 20
    assert max(len(r) for r in reads) < len(payload) // 4


def test_reset_peer_gives_econnreset(client, request):
    info, _ = proxied(client, echo, request)
    with connect(info.port) as sock:
        round_trip(sock)
        client.add_toxic("edge", "reset_peer", attributes={"timeout": 50})
        start = time.perf_counter()
        sock.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            for _ in range(100):
                if not sock.recv(100):
                    break
        assert time.perf_counter() - start >= 0.045


def test_timeout_holds_then_closes(client, request):
    info, _ = proxied(client, echo, request)
    with connect(info.port) as sock:
        round_trip(sock)
        client.add_toxic("edge", "timeout", attributes={"timeout": 300})
        start = time.perf_counter()
        sock.sendall(b"x")
        assert sock.recv(100) == b""
        assert 0.28 <= time.perf_counter() - start <= 1.0


def test_slow_close_delays_fin(client, request):
    def greet_and_close(conn: socket.socket) -> None:
        conn.recv(1)
        conn.sendall(b"bye")

    info, _ = proxied(client, greet_and_close, request)
    with connect(info.port) as sock:
        client.add_toxic("edge", "slow_close", attributes={"delay": 300})
        start = time.perf_counter()
        sock.sendall(b"x")
        assert read_all(sock) == b"bye"
        assert 0.28 <= time.perf_counter() - start <= 1.0


def test_upstream_toxic_acts_on_requests(client, request):
    info, _ = proxied(client, echo, request)
    with connect(info.port) as sock:
        client.add_toxic("edge", "latency", attributes={"latency": 50}, stream="upstream")
        assert 0.045 <= round_trip(sock) <= 0.2


def test_toxicity_half_affects_about_half_of_200_connections(client, request):
    info, _ = proxied(client, echo, request)
    client.add_toxic("edge", "latency", attributes={"latency": 400}, toxicity=0.5)
    socks = [connect(info.port) for _ in range(200)]
    try:
        for sock in socks:
            sock.sendall(b"x")
        time.sleep(0.2)
        fast = 0
        for sock in socks:
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                fast += sock.recv(10) == b"x"
    finally:
        for sock in socks:
            sock.close()
    assert 70 <= 200 - fast <= 130


def test_removing_toxic_restores_fast_path_without_losing_bytes(client, request):
    info, _ = proxied(client, echo, request)
    with connect(info.port) as sock:
        client.add_toxic("edge", "latency", attributes={"latency": 200}, name="slow")
        sock.sendall(b"held")
        time.sleep(0.05)
        client.remove_toxic("edge", "slow")
        assert sock.recv(100) == b"held"
        assert round_trip(sock) < 0.05


@pytest.mark.parametrize(
    ("type_", "attributes"), [("timeout", {"timeout": 0}), ("bandwidth", {"rate": 0})]
)
def test_removing_blocking_toxics_returns_within_1s(client, request, type_, attributes):
    info, _ = proxied(client, echo, request)
    socks = [connect(info.port) for _ in range(10)]
    try:
        client.add_toxic("edge", type_, attributes=attributes, name="block")
        for sock in socks:
            sock.sendall(b"x" * 1000)
        time.sleep(0.1)
        start = time.perf_counter()
        client.remove_toxic("edge", "block")
        assert time.perf_counter() - start < 1.0
    finally:
        for sock in socks:
            sock.close()


def test_disabled_proxy_refuses_and_closes_connections(client, request):
    info, _ = proxied(client, echo, request)
    sock = connect(info.port)
    round_trip(sock)
    client.update_proxy("edge", enabled=False)
    assert sock.recv(10) == b""
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        connect(info.port)
    client.update_proxy("edge", enabled=True)
    with connect(info.port) as again:
        round_trip(again)


def test_unreachable_upstream_closes_the_client(client):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{holder.getsockname()[1]}"
    holder.close()
    info = client.create_proxy("dead", dead)
    with connect(info.port) as sock, contextlib.suppress(ConnectionResetError):
        assert sock.recv(10) == b""


def test_hostname_upstream_is_resolved(client, request):
    upstream = Upstream(echo)
    request.addfinalizer(upstream.close)
    info = client.create_proxy("named", "localhost:" + upstream.address.rsplit(":", 1)[1])
    with connect(info.port) as sock:
        round_trip(sock)


def test_ordering_while_toxics_are_added_and_removed(client, request):
    """Toxiproxy's own test: 65,535 ordered values survive toxic churn, all in order."""
    info, _ = proxied(client, echo, request)
    count = 65_535
    payload = b"".join(struct.pack("!I", i) for i in range(count))
    received = bytearray()
    stop = threading.Event()
    with connect(info.port) as sock:

        def churn() -> None:
            for i in range(100_000):
                if stop.is_set():
                    return
                toxic = ("latency", {"latency": 0}) if i % 2 else ("slicer", {"average_size": 7})
                client.add_toxic("edge", toxic[0], attributes=toxic[1], name="churn")
                client.remove_toxic("edge", "churn")

        def reader() -> None:
            while len(received) < len(payload):
                chunk = sock.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        threads = [threading.Thread(target=churn), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        for offset in range(0, len(payload), 64):
            sock.sendall(payload[offset : offset + 64])
        threads[1].join(TIMEOUT * 3)
        stop.set()
        threads[0].join(TIMEOUT)
    assert len(received) == len(payload)
    values = struct.unpack(f"!{count}I", bytes(received))
    assert values == tuple(range(count))


def test_stop_closes_connections_and_is_idempotent(request):
    upstream = Upstream(echo)
    request.addfinalizer(upstream.close)
    srv = ProxyServer(port=0).start()
    info = ToxiproxyClient(srv.api_url).create_proxy("edge", upstream.address)
    sock = connect(info.port)
    round_trip(sock)
    srv.stop()
    srv.stop()
    try:
        assert sock.recv(10) == b""
    except OSError as err:
        assert err.errno == errno.ECONNRESET
    sock.close()


def fast_path_state(server: ProxyServer) -> list[tuple[bool, bool]]:
    """(splicing, pipe opened) of every live direction of the proxy 'edge'.

    Read between two events, each direction's cached hot-path flag must agree with the rule it
    caches (`copying`): a stale True would send bytes past a toxic.
    """

    def read() -> list[tuple[bool, bool]]:
        directions = [d for c in server.proxies["edge"].connections for d in (c.up, c.down) if d]
        assert [d.copy_ready for d in directions] == [d.copying for d in directions]
        return [(d.splicing, d.pipe is not None) for d in directions]

    return server.reactor.run_sync(read)


def test_fast_path_copies_small_messages_and_splices_bulk(client, server, request):
    """Requests and replies take one recv + send (no pipe opened); a bulk stream is spliced;
    switching between the two in either direction keeps the bytes exact and in order."""
    info, _ = proxied(client, echo, request)
    sizes = [14, 3 << 20, 100, 1 << 20, 7, 65536, 5]
    with connect(info.port) as sock:
        for _ in range(20):
            round_trip(sock)
        assert fast_path_state(server) == [(False, False), (False, False)]
        for index, size in enumerate(sizes):
            payload = bytes([index + 1]) * size
            echoed: list[bytes] = []
            reader = threading.Thread(target=lambda n=size, out=echoed: out.append(read_n(sock, n)))
            reader.start()
            sock.sendall(payload)
            reader.join(TIMEOUT)
            assert echoed == [payload], f"message {index} ({size} bytes) changed"
            if size >= 1 << 20:
                assert all(pipe for _, pipe in fast_path_state(server))
        round_trip(sock)
        assert [splicing for splicing, _ in fast_path_state(server)] == [False, False]
        client.add_toxic("edge", "latency", name="mid", attributes={"latency": 30})
        assert round_trip(sock) >= 0.029  # the toxic is in the path, not bypassed by a stale flag
        assert fast_path_state(server)
        client.remove_toxic("edge", "mid")
        round_trip(sock)
        assert fast_path_state(server) == [(False, True), (False, True)]  # pipes kept from bulk
        ready = server.reactor.run_sync(
            lambda: [
                d.copy_ready for c in server.proxies["edge"].connections for d in (c.up, c.down)
            ]
        )
        assert ready == [True, True], "the fast path did not resume after the toxic went"


def read_n(sock: socket.socket, size: int) -> bytes:
    got = bytearray()
    for _ in range(1_000_000):
        if len(got) >= size:
            break
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    return bytes(got)
