"""How a synthetic customer speaks HTTP, and how any attempt of a journey fails.

One request on a fresh connection (Connection: close) within what is left of the attempt's
budget, its whole answer as an HttpResult, and every customer-visible failure as JourneyFailed
whose `kind` is the error kind the sample records (timeout, connection-refused, http-503…).
Kept apart from chaos.probes, which runs the customers, so that the client and its error
classification — what checkers and histories later reason about — can be read on their own.
"""

from __future__ import annotations

import http.client
import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "pytest-chaos-probe/0.1"
BODY_EXCERPT = 200  # bytes of an unexpected body quoted in a failure message


class JourneyFailed(Exception):
    """A customer-visible failure of one attempt; `kind` becomes the sample's error kind.

    Not a ChaosError: it describes the system under test, not a misuse of the framework.
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}")


# Most specific first: TimeoutError and ConnectionError are both OSError.
_ERROR_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (TimeoutError, "timeout"),
    (ConnectionRefusedError, "connection-refused"),
    (ConnectionError, "connection-reset"),  # reset, aborted, broken pipe, RemoteDisconnected
    (http.client.HTTPException, "http-protocol"),
    (OSError, "network"),
)


def _error_kind(err: BaseException) -> str | None:
    return next((kind for cls, kind in _ERROR_KINDS if isinstance(err, cls)), None)


@dataclass(frozen=True, slots=True)
class HttpResult:
    """One HTTP answer a journey received."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON is a failure of kind "bad-json"."""
        try:
            return jsonlib.loads(self.body)
        except ValueError as err:
            excerpt = self.body[:BODY_EXCERPT]
            raise JourneyFailed("bad-json", f"body is not JSON ({err}): {excerpt!r}") from err

    @property
    def is_json(self) -> bool:
        return "json" in self.headers.get("content-type", "").lower()


def join_url(base: str, path: str) -> str:
    """`base` and `path` with exactly one slash between them."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def send_request(method: str, url: str, body: object, timeout: float) -> HttpResult:
    """Send one request with http.client (Connection: close) and read the whole answer."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise JourneyFailed("bad-url", f"cannot call {url!r}: expected http://host:port/path")
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    headers = {"Connection": "close", "User-Agent": USER_AGENT, "Accept": "application/json"}
    payload = None
    if body is not None:
        payload = jsonlib.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, target, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        answer = {name.lower(): value for name, value in response.getheaders()}
        return HttpResult(response.status, data, answer)
    except Exception as err:
        kind = _error_kind(err)
        if kind is None:
            raise
        raise JourneyFailed(kind, f"{method} {url}: {err or type(err).__name__}") from err
    finally:
        conn.close()
