"""A small typed admin client for the built-in proxy or a real Toxiproxy server (stdlib only)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from chaos.errors import ProxyError


@dataclass(frozen=True)
class ToxicInfo:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToxicInfo:
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            stream=str(data.get("stream", "downstream")),
            toxicity=float(data.get("toxicity", 1.0)),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass(frozen=True)
class ProxyInfo:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[ToxicInfo, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProxyInfo:
        return cls(
            name=str(data["name"]),
            listen=str(data["listen"]),
            upstream=str(data["upstream"]),
            enabled=bool(data.get("enabled", True)),
            toxics=tuple(ToxicInfo.from_json(t) for t in data.get("toxics") or ()),
        )

    @property
    def port(self) -> int:
        """The port the proxy listens on (the real one when 0 was asked for)."""
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")


class ToxiproxyClient:
    """Talks Toxiproxy's HTTP API v2. Errors raise ProxyError with `.status` and the message."""

    def __init__(self, url: str = "http://127.0.0.1:8474", timeout: float = 5.0) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ProxyError(f"proxy admin URL must look like http://host:port, got {url!r}")
        self.url = f"http://{parts.netloc}"
        self._host = parts.hostname
        self._port = parts.port or 80
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self.url!r})"

    # -- transport -----------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "pytest-chaos"}
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as err:
            raise proxy_error(
                f"cannot reach the proxy admin API at {self.url} ({method} {path}: {err}); "
                "check that the proxy (or Toxiproxy) is running and the URL/port is right",
                None,
            ) from err
        finally:
            conn.close()
        if response.status >= 400:
            raise proxy_error(
                f"proxy admin API {self.url} refused {method} {path}: "
                f"{response.status} {_message(raw)}",
                response.status,
            )
        if not raw:
            return None
        if "json" not in (response.getheader("Content-Type") or ""):
            return raw.decode("utf-8", "replace")
        return json.loads(raw)

    # -- API -----------------------------------------------------------------------------------
    def version(self) -> str:
        raw = self._request("GET", "/version")
        if isinstance(raw, Mapping):  # Toxiproxy >= 2.6 answers {"version": "..."}
            return str(raw.get("version", raw))
        return str(raw).strip()

    def proxies(self) -> dict[str, ProxyInfo]:
        data = self._request("GET", "/proxies") or {}
        return {name: ProxyInfo.from_json(p) for name, p in data.items()}

    def create_proxy(
        self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> ProxyInfo:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return ProxyInfo.from_json(self._request("POST", "/proxies", body))

    def get_proxy(self, name: str) -> ProxyInfo:
        return ProxyInfo.from_json(self._request("GET", _proxy_path(name)))

    def update_proxy(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        listen: str | None = None,
        upstream: str | None = None,
    ) -> ProxyInfo:
        given = {"enabled": enabled, "listen": listen, "upstream": upstream}
        body = {k: v for k, v in given.items() if v is not None}
        return ProxyInfo.from_json(self._request("POST", _proxy_path(name), body))

    def delete_proxy(self, name: str) -> None:
        self._request("DELETE", _proxy_path(name))

    def populate(self, proxies: Sequence[Mapping[str, Any]]) -> list[ProxyInfo]:
        data = self._request("POST", "/populate", list(proxies))
        items = data.get("proxies", []) if isinstance(data, Mapping) else data
        return [ProxyInfo.from_json(p) for p in items or ()]

    def toxics(self, proxy: str) -> list[ToxicInfo]:
        return [ToxicInfo.from_json(t) for t in self._request("GET", _toxics_path(proxy)) or ()]

    def add_toxic(
        self,
        proxy: str,
        type: str,
        *,
        attributes: Mapping[str, Any],
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> ToxicInfo:
        body = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": dict(attributes),
        }
        return ToxicInfo.from_json(self._request("POST", _toxics_path(proxy), body))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> ToxicInfo:
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = dict(attributes)
        if toxicity is not None:
            body["toxicity"] = toxicity
        path = f"{_toxics_path(proxy)}/{quote(name, safe='')}"
        return ToxicInfo.from_json(self._request("POST", path, body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._request("DELETE", f"{_toxics_path(proxy)}/{quote(name, safe='')}")

    def reset(self) -> None:
        self._request("POST", "/reset")


def proxy_error(message: str, status: int | None) -> ProxyError:
    """A ProxyError carrying the HTTP status (None when the server could not be reached)."""
    return ProxyError(message, status)


def _proxy_path(name: str) -> str:
    return f"/proxies/{quote(name, safe='')}"


def _toxics_path(proxy: str) -> str:
    return f"{_proxy_path(proxy)}/toxics"


def _message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()
    if isinstance(data, Mapping):
        return str(data.get("error") or data.get("title") or data)
    return str(data)
