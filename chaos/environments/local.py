"""The embedded default environment: catalog services as supervised local processes, edges proxied."""

from __future__ import annotations

import errno
import http.client
import socket
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import tenacity

from chaos.catalog import Catalog, Edge
from chaos.environments.base import StartStopContext, declared_file
from chaos.environments.local_spec import LocalSpec, load_local_spec
from chaos.environments.restart_policy import LifecycleEvent
from chaos.environments.supervisor import Launch, ResourceTracker, ServiceState, Supervisor
from chaos.errors import CatalogError, ChaosError, EnvironmentFailure, ProxyError
from faults.proxy.client import ProxyInfo, ToxiproxyClient
from faults.proxy.server import ProxyServer
from reconcilers.environment import ready_or_restarted, reconcile_proxies

HEALTH_TIMEOUT = 1.0  # one health check, as callers see it
MONITOR_HEALTH_TIMEOUT = 0.25  # one readiness look of the supervisor's monitor thread
HEALTH_POLL = 0.05  # pause between two health checks while waiting
FIRST_HOST = 10  # services get 127.0.0.10, .11, … in catalog order unless local.yaml says


def assign_addresses(catalog: Catalog, spec: LocalSpec) -> dict[str, tuple[str, int]]:
    """Each service's listen address: local.yaml's host or 127.0.0.(10+i), and its port (0: a free one)."""
    hosts: dict[str, str] = {}
    for index, name in enumerate(catalog.services):
        local = spec.services.get(name)
        if local is None:
            raise CatalogError(
                f"catalog service {name!r} has no entry; add services.{name} to {spec.path}",
                file=spec.path,
                field=f"services.{name}",
            )
        hosts[name] = local.host or f"127.0.0.{FIRST_HOST + index}"
    unpinned = [name for name in hosts if not spec.services[name].port]
    chosen = dict(zip(unpinned, free_ports([hosts[name] for name in unpinned]), strict=True))
    addresses: dict[str, tuple[str, int]] = {}
    owners: dict[tuple[str, int], str] = {}
    for name, host in hosts.items():
        address = (host, spec.services[name].port or chosen[name])
        if address in owners:
            raise CatalogError(
                f"services {owners[address]!r} and {name!r} both listen on "
                f"{address[0]}:{address[1]}; give one of them another host or port",
                file=spec.path,
                field=f"services.{name}.port",
            )
        owners[address] = name
        addresses[name] = address
    return addresses


def free_ports(hosts: Sequence[str]) -> list[int]:
    """A port nothing listens on now (the kernel's choice) for each host, all distinct per host.

    Every socket stays bound until all are chosen, so the kernel never hands out one port twice.
    """
    with ExitStack() as held:
        sockets = [
            held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in hosts
        ]
        for sock, host in zip(sockets, hosts, strict=True):
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def address_problem(host: str, port: int) -> str | None:
    """Why a service could not listen on host:port now (None when it can)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return "the address is already in use (another program, or a leftover of a run)"
            return f"it cannot be bound: {err.strerror or err}"
    return None


def check_health(host: str, port: int, health: str, timeout: float) -> bool:
    """Catalog health check: "tcp" = a connection succeeds; "/path" = GET answers 200."""
    if health == "tcp":
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", health, headers={"User-Agent": "pytest-chaos-health"})
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def split_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:40123' → ('127.0.0.1', 40123), as a Toxiproxy server reports a proxy's address."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class LocalEnvironment(StartStopContext):
    """Runs the catalog's services as local processes, each edge through its own proxy.

    Single use: start(), experiments, stop() (or a `with` block). `lifecycle` is the Supervisor.
    """

    kind = "local"

    def __init__(
        self,
        catalog: Catalog,
        spec: LocalSpec,
        *,
        run_id: str,
        state_dir: Path,
        tracker: ResourceTracker | None = None,
        proxy_url: str | None = None,
    ) -> None:
        self.catalog = catalog
        self.spec = spec
        self.run_id = run_id
        self.state_dir = Path(state_dir)
        self._addresses = assign_addresses(catalog, spec)
        self._proxy_url = proxy_url
        self._server: ProxyServer | None = None
        self._client: ToxiproxyClient | None = None
        self._proxies: dict[str, ProxyInfo] = {}
        self._phase = "new"  # new → started → stopped
        self.lifecycle = Supervisor(
            run_id=run_id, state_dir=self.state_dir, tracker=tracker, health=self._ready
        )

    @classmethod
    def from_catalog(
        cls,
        catalog: Catalog,
        *,
        run_id: str,
        state_dir: Path,
        tracker: ResourceTracker | None = None,
        proxy_url: str | None = None,
    ) -> LocalEnvironment:
        """Build from the catalog's `environments.local` file."""
        path = declared_file(catalog, "local")
        spec = load_local_spec(path, catalog)
        return cls(
            catalog, spec, run_id=run_id, state_dir=state_dir, tracker=tracker, proxy_url=proxy_url
        )

    # Environment

    def start(self) -> None:
        """Check addresses, start the proxy and one proxy per edge, then services in restore order."""
        if self._phase != "new":
            raise EnvironmentFailure(
                f"this local environment is already {self._phase}; create a new LocalEnvironment"
            )
        self._check_addresses()
        self._phase = "started"
        try:
            self._start_proxy()
            for edge in self.catalog.edges:
                self._wire(edge)
            order = self.catalog.restore_sequence()
            for name in order:
                host, port = self._addresses[name]
                env = self._edge_env(name)
                self.lifecycle.register(Launch(self.spec.services[name], host, port, env))
            for name in order:
                self.lifecycle.start(name)
                self.wait_healthy(name)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop services in reverse restore order, remove our proxies, stop the proxy; idempotent."""
        if self._phase == "stopped":
            return
        self._phase = "stopped"
        errors: list[str] = []
        try:
            self.lifecycle.shutdown(list(reversed(self.catalog.restore_sequence())))
        except ChaosError as err:
            errors.append(str(err))
        for name in list(self._proxies):
            try:
                assert self._client is not None
                self._client.delete_proxy(name)
            except ProxyError as err:
                if getattr(err, "status", None) != 404:
                    errors.append(f"proxy {name!r} on {self._client.url}: {err}")
            self._proxies.pop(name, None)
        if self._server is not None:
            self._server.stop()
            self._server = None
        if errors:
            raise EnvironmentFailure("stopping the local environment left: " + "; ".join(errors))

    def endpoint(self, service: str) -> str:
        host, port = self.address(service)
        return f"http://{host}:{port}"

    def address(self, service: str) -> tuple[str, int]:
        """Where the service itself listens (not through a proxy)."""
        self.catalog.service(service)
        return self._addresses[service]

    def proxy(self) -> ToxiproxyClient:
        if self._client is None:
            raise EnvironmentFailure("the local environment is not started: no proxy yet")
        return self._client

    def proxy_name(self, edge: Edge) -> str:
        return f"{edge.consumer}--{edge.provider}"

    def edge_address(self, edge: Edge) -> tuple[str, int]:
        """Where the consumer reaches the provider: the listen address of the edge's proxy."""
        try:
            return split_listen(self._proxies[self.proxy_name(edge)].listen)
        except KeyError:
            raise EnvironmentFailure(
                f"edge {edge.name} is not wired: the environment is not started"
            ) from None

    def healthy(self, service: str) -> bool:
        host, port = self.address(service)
        return check_health(host, port, self.catalog.service(service).health, HEALTH_TIMEOUT)

    @property
    def events(self) -> list[LifecycleEvent]:
        return self.lifecycle.events()

    def wait_healthy(self, service: str, timeout: float | None = None) -> None:
        """Wait until the service answers its health check; the error shows the end of its log."""
        limit = self.spec.services[service].ready_timeout if timeout is None else timeout
        host, port = self._addresses[service]
        health = self.catalog.service(service).health

        def gave_up(_: tenacity.RetryCallState) -> bool:
            return self.lifecycle.state(service) in (ServiceState.EXITED, ServiceState.STOPPED)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(tenacity.stop_after_delay(limit), gave_up),
            wait=tenacity.wait_fixed(HEALTH_POLL),
            retry=tenacity.retry_if_result(lambda ok: not ok),
            retry_error_callback=lambda _: False,
        )
        if not retrying(check_health, host, port, health, min(HEALTH_TIMEOUT, limit)):
            state = self.lifecycle.state(service).value
            raise EnvironmentFailure(
                f"service {service!r} did not become healthy on {host}:{port} (health check "
                f"{health!r}) within {limit:.1f}s; it is {state}. Last lines of "
                f"{self.lifecycle.log_path(service)}:\n{self.lifecycle.log_tail(service)}\n"
                f"Fix the service, or raise services.{service}.ready_timeout in {self.spec.path}"
            )

    def reconcile(self) -> list[str]:
        """Return to the declared state: services up and healthy, our proxies clean and enabled."""
        if self._phase != "started":
            raise EnvironmentFailure(f"cannot reconcile a local environment that is {self._phase}")
        repairs: list[str] = []
        for name in self.catalog.restore_sequence():
            repairs.extend(self._reconcile_service(name))
        repairs.extend(self._reconcile_proxies())
        return repairs

    def describe(self) -> dict[str, str]:
        proxy_kind = "toxiproxy" if self._proxy_url else "built-in"
        version = self._client.version() if self._client is not None else "-"
        addresses = ", ".join(f"{n}={h}:{p}" for n, (h, p) in self._addresses.items())
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "catalog": str(self.catalog.path),
            "spec": str(self.spec.path),
            "proxy": f"{proxy_kind} {version}",
            "proxy_api": self._client.url if self._client is not None else "-",
            "services": addresses,
            "logs": str(self.lifecycle.log_dir),
        }

    # internals

    def _ready(self, service: str) -> bool:
        host, port = self._addresses[service]
        health = self.catalog.service(service).health
        return check_health(host, port, health, MONITOR_HEALTH_TIMEOUT)

    def _check_addresses(self) -> None:
        for name, (host, port) in self._addresses.items():
            problem = address_problem(host, port)
            if problem:
                raise EnvironmentFailure(
                    f"service {name!r} cannot listen on {host}:{port}: {problem}. Stop whatever "
                    f"holds it (`ss -ltnp 'sport = :{port}'`), run `chaos clean`, or set "
                    f"services.{name}.host / port in {self.spec.path}"
                )

    def _start_proxy(self) -> None:
        if self._proxy_url:
            self._client = ToxiproxyClient(self._proxy_url)
        else:
            self._server = ProxyServer(host="127.0.0.1", port=0)
            self._server.start()
            self._client = ToxiproxyClient(self._server.api_url)
        self._client.version()  # fail now, with the client's message, if it cannot be reached

    def _wire(self, edge: Edge) -> None:
        client = self.proxy()
        name = self.proxy_name(edge)
        host, port = self._addresses[edge.provider]
        try:
            self._proxies[name] = client.create_proxy(name, f"{host}:{port}", listen="127.0.0.1:0")
        except ProxyError as err:
            raise EnvironmentFailure(
                f"cannot create proxy {name!r} for edge {edge.name} on {client.url}: {err}. "
                f"If it is left from an earlier run, remove it (`chaos clean`, or "
                f"DELETE {client.url}/proxies/{name})"
            ) from err

    def _edge_env(self, service: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for edge in self.catalog.edges_from(service):
            host, port = self.edge_address(edge)
            env[edge.env] = edge.address(host, port)
        return env

    def _reconcile_service(self, name: str) -> list[str]:
        repairs: list[str] = []
        state = self.lifecycle.state(name)
        if state is ServiceState.PAUSED:
            self.lifecycle.resume(name)
            repairs.append(f"resumed paused service {name}")
        elif state in (ServiceState.STOPPED, ServiceState.EXITED):
            self.lifecycle.start(name)
            repairs.append(f"started service {name} (it was {state.value})")
        elif state is ServiceState.RESTARTING:
            repairs.append(f"waited for service {name} to be restarted by its policy")
        return repairs + ready_or_restarted(name, self.wait_healthy, self.lifecycle)

    def _reconcile_proxies(self) -> list[str]:
        return reconcile_proxies(self.proxy(), self._proxies)
