"""Admin API conformance: raw HTTP for every endpoint and error, then toxiproxy-python unchanged."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from chaos.errors import ProxyError
from faults.proxy.client import ToxiproxyClient
from faults.proxy.server import ProxyServer


@pytest.fixture
def server():
    with ProxyServer(port=0) as srv:
        yield srv


@pytest.fixture
def upstream():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def call(server, method, path, body=None, headers=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    payload = raw if raw is not None else (None if body is None else json.dumps(body))
    conn.request(method, path, body=payload, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.getheader("Content-Type") == "application/json" and data:
        return response.status, json.loads(data)
    return response.status, data


def test_version(server):
    status, body = call(server, "GET", "/version")
    assert status == 200
    assert body.startswith(b"2.")


def test_proxy_lifecycle(server, upstream):
    status, created = call(server, "POST", "/proxies", {"name": "db", "upstream": upstream})
    assert status == 201
    assert created["name"] == "db" and created["enabled"] is True and created["toxics"] == []
    assert created["listen"].startswith("127.0.0.1:") and not created["listen"].endswith(":0")
    assert call(server, "GET", "/proxies") == (200, {"db": created})
    assert call(server, "GET", "/proxies/db") == (200, created)
    status, updated = call(server, "POST", "/proxies/db", {"enabled": False})
    assert status == 200 and updated["enabled"] is False and updated["listen"] == created["listen"]
    assert call(server, "DELETE", "/proxies/db") == (204, b"")
    assert call(server, "GET", "/proxies/db")[0] == 404


def test_toxic_lifecycle(server, upstream):
    call(server, "POST", "/proxies", {"name": "db", "upstream": upstream})
    status, toxic = call(
        server, "POST", "/proxies/db/toxics", {"type": "latency", "attributes": {"latency": 5}}
    )
    assert status == 200
    assert toxic == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 5, "jitter": 0},
    }
    assert call(server, "GET", "/proxies/db/toxics") == (200, [toxic])
    assert call(server, "GET", "/proxies/db/toxics/latency_downstream") == (200, toxic)
    status, new = call(
        server, "POST", "/proxies/db/toxics/latency_downstream", {"attributes": {"jitter": 2}}
    )
    assert status == 200 and new["attributes"] == {"latency": 5, "jitter": 2}
    assert call(server, "GET", "/proxies/db")[1]["toxics"] == [new]
    assert call(server, "DELETE", "/proxies/db/toxics/latency_downstream") == (204, b"")
    assert call(server, "GET", "/proxies/db/toxics") == (200, [])


def test_populate_and_reset(server, upstream):
    body = [{"name": "a", "upstream": upstream}, {"name": "b", "upstream": upstream}]
    status, result = call(server, "POST", "/populate", body)
    assert status == 201
    assert [p["name"] for p in result["proxies"]] == ["a", "b"]
    call(server, "POST", "/proxies/a", {"enabled": False})
    call(server, "POST", "/proxies/b/toxics", {"type": "timeout", "attributes": {"timeout": 1}})
    assert call(server, "POST", "/reset") == (204, b"")
    proxies = call(server, "GET", "/proxies")[1]
    assert all(p["enabled"] and p["toxics"] == [] for p in proxies.values())


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/nope", None, 404),
        ("GET", "/proxies/missing", None, 404),
        ("DELETE", "/proxies/missing", None, 404),
        ("GET", "/proxies/missing/toxics", None, 404),
        ("GET", "/proxies/db/toxics/missing", None, 404),
        ("DELETE", "/proxies/db/toxics/missing", None, 404),
        ("POST", "/proxies/db/toxics/missing", {}, 404),
        ("PUT", "/proxies", None, 405),
        ("DELETE", "/version", None, 405),
        ("PATCH", "/proxies/db", None, 405),
        ("POST", "/proxies", {"name": "x"}, 400),
        ("POST", "/proxies", {"upstream": "127.0.0.1:1"}, 400),
        ("POST", "/proxies", {"name": "x", "upstream": "nohostport"}, 400),
        ("POST", "/proxies", {"name": "x", "upstream": "127.0.0.1:1", "enabled": "yes"}, 400),
        ("POST", "/proxies", [1, 2], 400),
        ("POST", "/proxies/db", {"enabled": 3}, 400),
        ("POST", "/populate", {"not": "a list"}, 400),
        ("POST", "/populate", [{"name": "x"}], 400),
        ("POST", "/proxies/db/toxics", {"type": "warp"}, 400),
        ("POST", "/proxies/db/toxics", {"type": "latency", "attributes": {"latency": -5}}, 400),
        ("POST", "/proxies/db/toxics", {"type": "latency", "stream": "both"}, 400),
        ("POST", "/proxies/db/toxics", {"type": "latency", "toxicity": "1"}, 400),
    ],
)
def test_errors(server, upstream, method, path, body, status):
    call(server, "POST", "/proxies", {"name": "db", "upstream": upstream})
    got, payload = call(server, method, path, body)
    assert got == status
    assert payload["status"] == status and payload["error"]


def test_invalid_json_and_oversized_body(server):
    status, payload = call(server, "POST", "/proxies", raw=b"{not json")
    assert status == 400 and "invalid JSON" in payload["error"]
    status, _ = call(server, "POST", "/proxies", raw=b"[" * 100_000 + b"]" * 100_000)
    assert status in (400, 413)
    status, _ = call(server, "POST", "/proxies", raw=b"x" * (2 * 1024 * 1024))
    assert status == 413


def test_duplicates_conflict(server, upstream):
    assert call(server, "POST", "/proxies", {"name": "db", "upstream": upstream})[0] == 201
    assert call(server, "POST", "/proxies", {"name": "db", "upstream": upstream})[0] == 409
    toxic = {"type": "latency", "attributes": {"latency": 1}}
    assert call(server, "POST", "/proxies/db/toxics", toxic)[0] == 200
    assert call(server, "POST", "/proxies/db/toxics", toxic)[0] == 409


def test_listen_port_taken_is_409_with_a_clear_message(server, upstream):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = f"127.0.0.1:{holder.getsockname()[1]}"
    try:
        status, payload = call(
            server, "POST", "/proxies", {"name": "x", "upstream": upstream, "listen": taken}
        )
    finally:
        holder.close()
    assert status == 409
    assert "already in use" in payload["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"},
        {"Origin": "http://evil.example"},
        {"Host": "evil.example:8474"},
    ],
)
def test_browsers_and_rebinding_are_forbidden(server, headers):
    status, payload = call(server, "GET", "/proxies", headers=headers)
    assert status == 403 and payload["status"] == 403


def test_localhost_host_header_is_accepted(server):
    assert call(server, "GET", "/version", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_keep_alive_serves_several_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for _ in range(5):
        conn.request("GET", "/version")
        response = conn.getresponse()
        assert response.status == 200
        response.read()
    conn.close()


def test_garbage_request_lines_get_4xx_not_5xx(server):
    for garbage in (
        b"\x00\xff\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9\r\n\r\n",
        b"A B C D\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(garbage)
            reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 4"), reply


def test_typed_client_round_trip(server, upstream):
    client = ToxiproxyClient(server.api_url)
    assert client.version().startswith("2.")
    info = client.create_proxy("db", upstream)
    assert client.get_proxy("db") == info
    assert client.proxies() == {"db": info}
    toxic = client.add_toxic("db", "latency", attributes={"latency": 3}, toxicity=0.5)
    assert toxic.name == "latency_downstream" and toxic.toxicity == 0.5
    assert (
        client.update_toxic("db", toxic.name, attributes={"latency": 4}).attributes["latency"] == 4
    )
    assert [t.name for t in client.toxics("db")] == [toxic.name]
    client.remove_toxic("db", toxic.name)
    assert client.update_proxy("db", enabled=False).enabled is False
    assert [p.name for p in client.populate([{"name": "e", "upstream": upstream}])] == ["e"]
    client.reset()
    assert client.get_proxy("db").enabled is True
    client.delete_proxy("db")
    with pytest.raises(ProxyError) as info_404:
        client.get_proxy("db")
    assert info_404.value.status == 404 and "proxy not found" in str(info_404.value)


def test_typed_client_names_the_url_when_unreachable():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ProxyError) as info:
        ToxiproxyClient(f"http://127.0.0.1:{port}", timeout=1).version()
    assert f"127.0.0.1:{port}" in str(info.value) and info.value.status is None


def test_toxiproxy_python_works_unchanged(server, upstream):
    toxiproxy = pytest.importorskip("toxiproxy")
    from toxiproxy.api import APIConsumer

    saved = (APIConsumer.host, APIConsumer.port)
    APIConsumer.host, APIConsumer.port = "127.0.0.1", server.port
    try:
        tp = toxiproxy.Toxiproxy()
        assert tp.running()
        assert tp.version().startswith(b"2.")
        proxy = tp.create(upstream=upstream, name="db")
        assert "db" in tp.proxies()
        proxy.add_toxic(type="latency", attributes={"latency": 10})
        assert list(proxy.toxics()) == ["latency_downstream"]
        proxy.destroy_toxic("latency_downstream")
        with proxy.down():
            assert tp.get_proxy("db").enabled is False
        assert tp.get_proxy("db").enabled is True
        with pytest.raises(toxiproxy.exceptions.ProxyExists):
            tp.create(upstream=upstream, name="db")
        assert tp.reset()
        tp.destroy_all()
        assert tp.proxies() == {}
    finally:
        APIConsumer.host, APIConsumer.port = saved
