"""Toxiproxy v2 admin API over a small hand-written HTTP/1.1 server (stdlib, keep-alive).

Parsing is strict and bounded (request line, header count and size, body size); anything a
client gets wrong is a 4xx, never a 5xx. Browsers are refused three ways: a `Mozilla/` user
agent (as Toxiproxy does), any `Origin` header, and a Host header that names something other
than this server (DNS rebinding).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

from faults.proxy.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    http_status,
)

log = logging.getLogger(__name__)

MAX_LINE = 8192
MAX_HEADERS = 100
MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 30.0
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


class Backend(Protocol):
    """What the API drives (ProxyServer): `call("create_proxy", body)` etc. on its own thread."""

    def call(self, method: str, *args: Any) -> Any: ...


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body.strip():
            raise BadRequest("bad request body: empty, expected JSON")
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, RecursionError) as err:
            raise BadRequest(f"bad request body: invalid JSON ({err})") from None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    extra: tuple[tuple[str, str], ...] = ()


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode())


def error_response(err: ApiError) -> Response:
    status = http_status(err)
    extra = (("Allow", ", ".join(err.allowed)),) if isinstance(err, MethodNotAllowed) else ()
    return Response(status, json.dumps({"error": str(err), "status": status}).encode(), extra=extra)


# -- routing -----------------------------------------------------------------------------------
Handler = Callable[[Backend, Request, list[str]], Response]


def _route_table() -> list[tuple[tuple[str | None, ...], dict[str, Handler]]]:
    """Paths as segment patterns (None = a name) and the handler for each method."""
    return [
        (
            ("version",),
            {"GET": lambda b, r, a: Response(200, b.call("version").encode(), "text/plain")},
        ),
        (("reset",), {"POST": lambda b, r, a: _empty(b.call("reset"))}),
        (
            ("proxies",),
            {
                "GET": lambda b, r, a: json_response(200, b.call("list_proxies")),
                "POST": lambda b, r, a: json_response(201, b.call("create_proxy", r.json())),
            },
        ),
        (
            ("populate",),
            {"POST": lambda b, r, a: json_response(201, {"proxies": b.call("populate", r.json())})},
        ),
        (
            ("proxies", None),
            {
                "GET": lambda b, r, a: json_response(200, b.call("get_proxy", *a)),
                "POST": lambda b, r, a: json_response(200, b.call("update_proxy", *a, r.json())),
                "DELETE": lambda b, r, a: _empty(b.call("delete_proxy", *a)),
            },
        ),
        (
            ("proxies", None, "toxics"),
            {
                "GET": lambda b, r, a: json_response(200, b.call("list_toxics", *a)),
                "POST": lambda b, r, a: json_response(200, b.call("create_toxic", *a, r.json())),
            },
        ),
        (
            ("proxies", None, "toxics", None),
            {
                "GET": lambda b, r, a: json_response(200, b.call("get_toxic", *a)),
                "POST": lambda b, r, a: json_response(200, b.call("update_toxic", *a, r.json())),
                "DELETE": lambda b, r, a: _empty(b.call("delete_toxic", *a)),
            },
        ),
    ]


ROUTES = _route_table()


def _empty(_: object) -> Response:
    return Response(204)


def route(request: Request) -> tuple[Handler, list[str]]:
    """The handler and path arguments for a request; NotFound / MethodNotAllowed otherwise."""
    path = request.path.split("?", 1)[0]
    segments = [unquote(s, errors="strict") for s in path.split("/")[1:]] if path else []
    for pattern, methods in ROUTES:
        if len(pattern) != len(segments):
            continue
        if all(p is None or p == s for p, s in zip(pattern, segments, strict=True)):
            args = [s for p, s in zip(pattern, segments, strict=True) if p is None]
            if request.method not in methods:
                allowed = tuple(sorted(methods))
                raise MethodNotAllowed(
                    f"method {request.method} not allowed on {path}; use {', '.join(allowed)}",
                    allowed,
                )
            return methods[request.method], args
    raise NotFound(f"no such path: {path!r}")


def check_origin(request: Request, allowed_hosts: tuple[str, ...], listen_host: str) -> None:
    """Refuse browsers: Mozilla user agents, any Origin, a Host that is not us (rebinding)."""
    if request.headers.get("user-agent", "").startswith("Mozilla/"):
        raise Forbidden("requests from browsers are refused (User-Agent Mozilla/)")
    if "origin" in request.headers:
        raise Forbidden("cross-origin requests are refused (Origin header present)")
    host = request.headers.get("host")
    if host is not None and not host_allowed(host, allowed_hosts, listen_host):
        raise Forbidden(
            f"Host {host!r} is not this server; use an IP address or localhost "
            "(refused to prevent DNS rebinding)"
        )


def host_allowed(host: str, allowed_hosts: tuple[str, ...], listen_host: str) -> bool:
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name in ("localhost", listen_host.lower(), *(h.lower() for h in allowed_hosts)):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or listen_host in ("0.0.0.0", "::", "")


def dispatch(
    backend: Backend, request: Request, allowed_hosts: tuple[str, ...] = (), listen_host: str = ""
) -> Response:
    """The whole API as a function of one request (no sockets): what tests can drive directly."""
    try:
        check_origin(request, allowed_hosts, listen_host)
        handler, args = route(request)
        return handler(backend, request, args)
    except ApiError as err:
        return error_response(err)
    except UnicodeError:
        return error_response(BadRequest("path is not valid UTF-8"))
    except Exception as err:  # a bug on our side: say so, keep serving
        log.exception("admin API request failed")
        return json_response(500, {"error": f"internal error: {err!r}", "status": 500})


# -- HTTP/1.1 ----------------------------------------------------------------------------------
class _Malformed(Exception):
    def __init__(self, err: ApiError) -> None:
        self.err = err


def read_request(rfile: Any) -> Request | None:
    """One request from a buffered socket file; None on a clean close between requests."""
    line = rfile.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):
        line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise _Malformed(BadRequest("request line too long"))
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise _Malformed(BadRequest(f"malformed request line {line[:100]!r}"))
    method, path, _ = parts
    headers = _read_headers(rfile)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _Malformed(
            BadRequest("chunked request bodies are not supported; send Content-Length")
        )
    length_text = headers.get("content-length", "0").strip() or "0"
    if not length_text.isdigit():
        raise _Malformed(BadRequest(f"bad Content-Length {length_text!r}"))
    length = int(length_text)
    if length > MAX_BODY:
        raise _Malformed(PayloadTooLarge(f"request body of {length} bytes exceeds {MAX_BODY}"))
    body = rfile.read(length) if length else b""
    if len(body) < length:
        return None
    return Request(method, path, headers, body)


def _read_headers(rfile: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise _Malformed(BadRequest("header line too long"))
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not name.strip() or name != name.strip():
            raise _Malformed(BadRequest(f"malformed header line {line[:100]!r}"))
        headers[name.lower()] = value.strip()
    raise _Malformed(BadRequest(f"more than {MAX_HEADERS} headers"))


def render(response: Response, keep_alive: bool) -> bytes:
    head = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}"]
    if response.status != 204:
        head.append(f"Content-Type: {response.content_type}")
        head.append(f"Content-Length: {len(response.body)}")
    head.extend(f"{k}: {v}" for k, v in response.extra)
    head.append("Connection: keep-alive" if keep_alive else "Connection: close")
    body = b"" if response.status == 204 else response.body
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _Handler(socketserver.StreamRequestHandler):
    server: AdminServer
    timeout = IDLE_TIMEOUT

    def handle(self) -> None:
        self.server.track(self.request, add=True)
        try:
            for _ in range(100_000):  # bounded keep-alive
                if not self._one():
                    return
        except OSError:
            return
        finally:
            self.server.track(self.request, add=False)

    def _one(self) -> bool:
        try:
            request = read_request(self.rfile)
        except _Malformed as bad:
            self.wfile.write(render(error_response(bad.err), keep_alive=False))
            self.wfile.flush()
            self._linger()
            return False
        if request is None:
            return False
        response = dispatch(self.server.backend, request, *self.server.origin_rules)
        keep = request.headers.get("connection", "").lower() != "close"
        self.wfile.write(render(response, keep_alive=keep))
        self.wfile.flush()
        return keep

    def _linger(self) -> None:
        """Read and discard what the client still sends, so it can read our error reply."""
        sock: socket.socket = self.request
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(LINGER_SECONDS)
        for _ in range(LINGER_BYTES // 65536):
            if not sock.recv(65536):
                return


class AdminServer(socketserver.ThreadingTCPServer):
    """The admin HTTP listener, one daemon thread per client connection."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], backend: Backend, allowed: tuple[str, ...]):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.backend = backend
        self.origin_rules = (allowed, address[0])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._open.add if add else self._open.discard)(sock)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="chaos-proxy-admin",
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
