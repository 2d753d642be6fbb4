"""What every shop service shares: env configuration, a JSON HTTP server, an HTTP client, logging.

Stdlib only, so each service runs unchanged under Debian's python3 in a container.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

JsonBody = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status and a JSON body."""

    status: int
    body: Any = field(default_factory=dict)


class BadRequest(Exception):
    """The client sent something the service cannot use (answered with 400)."""


class Upstream(Exception):
    """A call to another service failed: refused, reset, timed out, or an unexpected status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[re.Match[str], JsonBody], Reply]
Route = tuple[str, re.Pattern[str], Handler]


def route(method: str, pattern: str, handler: Handler) -> Route:
    """One entry of a service's routing table; `pattern` must match the whole path."""
    return method, re.compile(f"^{pattern}$"), handler


def env_str(name: str, default: str | None = None) -> str:
    """A required (or defaulted) setting from the environment; exit with a clear line if absent."""
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"{name} is not set: this service needs it (the environment sets it per edge)")
    return value


def state_dir(service: str) -> Path:
    """Where a stateful service keeps its data: $SHOP_STATE_DIR (or the temp dir)/<service>-<port>.

    One directory per port, so a new run on the same port reuses (and its setup wipes) the old one.
    """
    root = os.environ.get("SHOP_STATE_DIR") or Path(tempfile.gettempdir()) / "pytest-chaos-shop"
    return Path(root) / f"{service}-{env_str('PORT')}"


def resilient() -> bool:
    """Whether the resilient variant of the shop is switched on (SHOP_RESILIENT=1)."""
    return os.environ.get("SHOP_RESILIENT", "0").strip().lower() in ("1", "true", "yes", "on")


def setup_logging(service: str) -> logging.Logger:
    """Log lines to stdout, which the supervisor (or Docker) collects."""
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format=f"%(asctime)s {service} %(levelname)s %(message)s",
    )
    return logging.getLogger(service)


def read_body(handler: BaseHTTPRequestHandler) -> JsonBody:
    """The request's JSON object body ({} when empty); BadRequest when it is not an object."""
    length = int(handler.headers.get("Content-Length") or 0)
    if length == 0:
        return {}
    try:
        body = json.loads(handler.rfile.read(length))
    except ValueError as err:
        raise BadRequest(f"body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def make_handler(routes: Sequence[Route], log: logging.Logger) -> type[BaseHTTPRequestHandler]:
    """A request handler class dispatching on the routing table; errors become JSON answers."""

    class JsonHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "shop/1"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            path = urlsplit(self.path).path
            try:
                reply = self._handle(method, path)
            except BadRequest as err:
                reply = Reply(400, {"error": str(err)})
            except Upstream as err:
                reply = Reply(502, {"error": str(err)})
            except Exception as err:  # a bug or an unreachable store: answer, log, keep serving
                log.exception("%s %s failed", method, path)
                reply = Reply(503, {"error": f"{type(err).__name__}: {err}"})
            self._send(reply)

        def _handle(self, method: str, path: str) -> Reply:
            body = read_body(self) if method == "POST" else {}
            allowed = False
            for verb, pattern, handler in routes:
                match = pattern.match(path)
                if match and verb == method:
                    return handler(match, body)
                allowed = allowed or bool(match)
            return Reply(405 if allowed else 404, {"error": f"no route for {method} {path}"})

        def _send(self, reply: Reply) -> None:
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            if not self.path.startswith("/health"):
                log.info("%s %s", self.address_string(), format % args)

    return JsonHandler


def serve(service: str, routes: Sequence[Route], log: logging.Logger) -> ThreadingHTTPServer:
    """Listen on HOST:PORT (set by the environment) and answer until SIGTERM / SIGINT."""
    host, port = env_str("HOST", "127.0.0.1"), int(env_str("PORT"))
    server = ThreadingHTTPServer((host, port), make_handler(routes, log))

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("%s listening on http://%s:%d (resilient=%s)", service, host, port, resilient())
    return server


def call(
    method: str, url: str, body: Any = None, *, timeout: float | None, expect: Sequence[int] = ()
) -> Reply:
    """One JSON request on a fresh connection; `timeout` None waits forever (a weakness).

    Raises Upstream on I/O errors, on non-JSON answers, and on a status outside `expect` (2xx
    when empty); 404 is returned, not raised, when it is in `expect`.
    """
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Connection": "close"}
    try:
        conn.request(method, parts.path or "/", body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as err:
        raise Upstream(f"{method} {url}: {type(err).__name__}: {err}") from err
    finally:
        conn.close()
    ok = response.status in expect if expect else 200 <= response.status < 300
    if not ok:
        raise Upstream(
            f"{method} {url} answered {response.status}: {data[:200]!r}", response.status
        )
    try:
        return Reply(response.status, json.loads(data) if data else {})
    except ValueError as err:
        raise Upstream(f"{method} {url} answered non-JSON: {data[:200]!r}") from err
