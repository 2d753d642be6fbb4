"""The proxy server: named proxies (listener + connections + toxics) on a reactor, plus admin API.

All proxy state lives on the reactor thread; the admin API thread calls in with `run_sync`, so
there are no locks on the data path. `ProxyServer` is what the local environment embeds, what
`chaos proxy` runs and what the Compose sidecar runs (`python -m faults.proxy`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import ipaddress
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from faults.proxy import api
from faults.proxy.connection import Connection
from faults.proxy.core import ToxicSpec
from faults.proxy.errors import BadRequest, Conflict, NotFound
from faults.proxy.reactor import IN, Reactor
from faults.proxy.toxics.registry import parse_toxic, update_toxic

VERSION = "2.12.0-pytest-chaos"
ACCEPT_BATCH = 64


def split_address(text: object, what: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); BadRequest naming `what` otherwise."""
    if not isinstance(text, str) or ":" not in text:
        raise BadRequest(f"{what} must be 'host:port', got {text!r}")
    host, _, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise BadRequest(f"{what} port must be 0-65535, got {text!r}")
    return host or "0.0.0.0", int(port_text)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Proxy:
    """One named proxy. Methods run on the reactor thread only."""

    def __init__(self, server: ProxyServer, name: str, listen: str, upstream: str) -> None:
        self.server = server
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: list[ToxicSpec] = []
        self.listener: socket.socket | None = None
        self.connections: set[Connection] = set()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics],
        }

    # -- listening -----------------------------------------------------------------------------
    def start(self) -> None:
        if self.enabled:
            return
        host, port = split_address(self.listen, "listen")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as err:
            raise BadRequest(f"listen address {self.listen!r} cannot be resolved: {err}") from None
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(1024)
        except OSError as err:
            sock.close()
            if err.errno == errno.EADDRINUSE:
                raise Conflict(
                    f"proxy {self.name!r}: listen address {self.listen} is already in use by "
                    "another socket; choose another port or use port 0 for a free one"
                ) from None
            raise BadRequest(
                f"proxy {self.name!r}: cannot listen on {self.listen}: {err}"
            ) from None
        sock.setblocking(False)
        bound = sock.getsockname()
        self.listen = join_address(host, bound[1])  # the real port when 0 was asked for
        self.listener = sock
        self.enabled = True
        reactor = self.server.reactor
        reactor.set_handler(sock.fileno(), self._on_accept)
        reactor.want(sock.fileno(), IN)

    def stop(self) -> None:
        """Stop listening and close every connection (enabled=false, delete, shutdown)."""
        if self.listener is not None:
            self.server.reactor.forget(self.listener.fileno())
            self.listener.close()
            self.listener = None
        self.enabled = False
        for conn in list(self.connections):
            conn.close()
        self.connections.clear()

    def _on_accept(self, events: int) -> None:
        for _ in range(ACCEPT_BATCH):
            if self.listener is None:
                return
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. EMFILE: the backlog keeps it until descriptors are free
            conn = Connection(self, client, self.server.reactor)
            conn.on_close = self.connections.discard
            self.connections.add(conn)
            self._dial(conn)

    def _dial(self, conn: Connection) -> None:
        try:
            host, port = split_address(self.upstream, "upstream")
        except BadRequest:
            conn.close()
            return
        if _is_ip(host):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            conn.connect((host, port), family)
            return

        def resolved(future: concurrent.futures.Future[list]) -> None:
            def go() -> None:
                if conn.closed:
                    return
                try:
                    family, _, _, _, sockaddr = future.result()[0]
                except (OSError, UnicodeError, IndexError):
                    conn.close()
                    return
                conn.connect(sockaddr, family)

            self.server.reactor.call_soon_threadsafe(go)

        self.server.resolver.submit(
            socket.getaddrinfo, host, port, type=socket.SOCK_STREAM
        ).add_done_callback(resolved)

    # -- toxics --------------------------------------------------------------------------------
    def set_toxics(self, toxics: Sequence[ToxicSpec]) -> None:
        """Apply a new toxic list to the proxy and to every live connection."""
        self.toxics = list(toxics)
        now = time.monotonic()
        for conn in list(self.connections):
            conn.install(self.toxics, now)

    def toxic(self, name: str) -> ToxicSpec:
        for spec in self.toxics:
            if spec.name == name:
                return spec
        raise NotFound(f"toxic not found: {name!r} on proxy {self.name!r}")


class ProxyServer:
    """Toxiproxy-compatible proxy server: `start()` returns once the admin API is listening."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 8474, allowed_hosts: Sequence[str] = ()
    ) -> None:
        self.host = host
        self.port = port
        self.allowed_hosts = tuple(allowed_hosts)
        self.reactor = Reactor()
        self.resolver = concurrent.futures.ThreadPoolExecutor(2, "chaos-proxy-dns")
        self.proxies: dict[str, Proxy] = {}
        self._admin: api.AdminServer | None = None
        self._started = False
        self._stopped = False

    @property
    def api_url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "", "::") else "127.0.0.1"
        return f"http://{join_address(host, self.port)}"

    def start(self) -> ProxyServer:
        if self._started:
            return self
        self._admin = api.AdminServer((self.host, self.port), self, self.allowed_hosts)
        self.port = self._admin.server_address[1]
        self.reactor.start()
        self._admin.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Close every listener and connection, stop the threads. Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        if self._admin is not None:
            self._admin.stop()
        with contextlib.suppress(TimeoutError, concurrent.futures.TimeoutError):
            self.reactor.run_sync(self._close_all)
        self.reactor.stop()
        self.reactor.close()
        self.resolver.shutdown(wait=False, cancel_futures=True)

    def _close_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()

    def __enter__(self) -> ProxyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the admin backend: each call runs on the reactor thread -------------------------------
    def call(self, method: str, *args: Any) -> Any:
        return self.reactor.run_sync(lambda: getattr(self, "_" + method)(*args))

    def _version(self) -> str:
        return VERSION

    def _proxy(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise NotFound(f"proxy not found: {name!r}") from None

    def _list_proxies(self) -> dict[str, Any]:
        return {name: p.to_json() for name, p in self.proxies.items()}

    def _create_proxy(self, body: object) -> dict[str, Any]:
        return self._add(_proxy_fields(body, None)).to_json()

    def _add(self, fields: Mapping[str, Any]) -> Proxy:
        if fields["name"] in self.proxies:
            raise Conflict(f"proxy already exists: {fields['name']!r}")
        proxy = Proxy(self, fields["name"], fields["listen"], fields["upstream"])
        if fields["enabled"]:
            proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    def _populate(self, body: object) -> list[dict[str, Any]]:
        """Create or replace proxies from a list; all-or-nothing for the new ones."""
        if not isinstance(body, list):
            raise BadRequest("bad request body: /populate expects a JSON list of proxies")
        wanted = [_proxy_fields(item, None) for item in body]
        created: list[Proxy] = []
        try:
            for fields in wanted:
                existing = self.proxies.get(fields["name"])
                if existing is not None:
                    if existing.upstream == fields["upstream"] and (
                        existing.listen == fields["listen"]
                    ):
                        created.append(existing)
                        continue
                    self._delete_proxy(existing.name)
                created.append(self._add(fields))
        except Exception:
            for proxy in created:
                if self.proxies.get(proxy.name) is proxy and proxy.name in {
                    f["name"] for f in wanted
                }:
                    self._delete_proxy(proxy.name)
            raise
        return [p.to_json() for p in created]

    def _get_proxy(self, name: str) -> dict[str, Any]:
        return self._proxy(name).to_json()

    def _update_proxy(self, name: str, body: object) -> dict[str, Any]:
        proxy = self._proxy(name)
        fields = _proxy_fields(body, proxy)
        moved = (fields["listen"], fields["upstream"]) != (proxy.listen, proxy.upstream)
        if moved or not fields["enabled"]:
            proxy.stop()
        proxy.listen, proxy.upstream = fields["listen"], fields["upstream"]
        if fields["enabled"]:
            proxy.start()
        return proxy.to_json()

    def _delete_proxy(self, name: str) -> None:
        self._proxy(name).stop()
        del self.proxies[name]

    def _list_toxics(self, name: str) -> list[dict[str, Any]]:
        return [t.to_json() for t in self._proxy(name).toxics]

    def _create_toxic(self, name: str, body: object) -> dict[str, Any]:
        proxy = self._proxy(name)
        spec = parse_toxic(body)
        if any(t.name == spec.name for t in proxy.toxics):
            raise Conflict(f"toxic already exists: {spec.name!r} on proxy {name!r}")
        proxy.set_toxics([*proxy.toxics, spec])
        return spec.to_json()

    def _get_toxic(self, name: str, toxic: str) -> dict[str, Any]:
        return self._proxy(name).toxic(toxic).to_json()

    def _update_toxic(self, name: str, toxic: str, body: object) -> dict[str, Any]:
        proxy = self._proxy(name)
        new = update_toxic(proxy.toxic(toxic), body)
        proxy.set_toxics([new if t.name == toxic else t for t in proxy.toxics])
        return new.to_json()

    def _delete_toxic(self, name: str, toxic: str) -> None:
        proxy = self._proxy(name)
        proxy.toxic(toxic)
        proxy.set_toxics([t for t in proxy.toxics if t.name != toxic])

    def _reset(self) -> None:
        """Enable every proxy and remove every toxic (Toxiproxy's /reset)."""
        for proxy in self.proxies.values():
            proxy.set_toxics([])
        for proxy in self.proxies.values():
            proxy.start()


def _proxy_fields(body: object, current: Proxy | None) -> dict[str, Any]:
    """Validated proxy fields; on update (current given) missing fields keep their values."""
    if not isinstance(body, Mapping):
        raise BadRequest("bad request body: expected a JSON object with name, listen, upstream")
    fields: dict[str, Any] = {
        "name": current.name if current else body.get("name"),
        "listen": body.get("listen", current.listen if current else "127.0.0.1:0"),
        "upstream": body.get("upstream", current.upstream if current else None),
        "enabled": body.get("enabled", current.enabled if current else True),
    }
    for key in ("name", "upstream"):
        if not isinstance(fields[key], str) or not fields[key]:
            raise BadRequest(f"missing required field: {key} (a non-empty string)")
    if "/" in fields["name"] or len(fields["name"]) > 200:
        raise BadRequest(f"proxy name must not contain '/', got {fields['name']!r}")
    if fields["listen"] in (None, ""):
        fields["listen"] = "127.0.0.1:0"
    split_address(fields["listen"], "listen")
    split_address(fields["upstream"], "upstream")
    if not isinstance(fields["enabled"], bool):
        raise BadRequest(f"enabled must be true or false, got {fields['enabled']!r}")
    return fields
