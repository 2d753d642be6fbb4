"""The Docker Compose environment: the user's compose file, one proxy sidecar on the catalog's edges.

The user's file needs no proxy service: an override written into the state dir adds one sidecar
(the built-in proxy) that carries every catalog edge, points each consumer at it through the edge's
environment variable, publishes ports on 127.0.0.1 only, and labels everything with our run id.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.errors
import tenacity
import yaml

from chaos.catalog import Catalog, Edge
from chaos.environments.base import StartStopContext, declared_file
from chaos.environments.compose_config import (
    SIDECAR,
    Wiring,
    build_override,
    check_compose,
    edge_ports,
    proxy_name,
)
from chaos.environments.compose_events import DockerEventLog
from chaos.environments.local import HEALTH_POLL, HEALTH_TIMEOUT, check_health, free_ports
from chaos.environments.restart_policy import LifecycleEvent
from chaos.errors import ConfigError, EnvironmentFailure, FaultError, ProxyError
from chaos.procfs import process_start_ticks
from faults.base import Recipe
from faults.container import (
    PROJECT_LABEL,
    RUN_LABEL,
    Attachment,
    ContainerLifecycle,
    docker_client,
    remove_run_objects,
)
from faults.proxy.client import ProxyInfo, ToxiproxyClient

if TYPE_CHECKING:
    from chaos.environments.supervisor import ResourceTracker

CLI_TIMEOUT = 300.0  # bound on one compose command (an `up` may build images)
READY_TIMEOUT = 60.0  # bound on services becoming healthy
STOP_GRACE = 5  # seconds `down` gives a container between SIGTERM and SIGKILL
_PROJECT_CHARS = re.compile(r"[^a-z0-9_-]+")


def project_name(run_id: str) -> str:
    """The Compose project of a run: `chaos-<run id lowercased>` (Compose's allowed characters)."""
    return "chaos-" + _PROJECT_CHARS.sub("-", run_id.lower()).strip("-")


@functools.cache
def compose_command() -> tuple[str, ...]:
    """`docker compose` when the plugin exists, else `docker-compose`; detected once."""
    for candidate in (("docker", "compose"), ("docker-compose",)):
        try:
            subprocess.run([*candidate, "version"], capture_output=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError):
            continue
        return candidate
    raise EnvironmentFailure(
        "neither `docker compose` nor `docker-compose` works on this machine; install the "
        "Compose plugin (or docker-compose) to use --chaos-env compose"
    )


@dataclass(frozen=True)
class ComposeCli:
    """Runs one compose command on our project and files; failures show the command's output."""

    command: tuple[str, ...]
    project: str
    files: tuple[Path, ...]

    def run(self, *args: str, timeout: float = CLI_TIMEOUT) -> str:
        argv = [*self.command, "-p", self.project, *(f"-f{f}" for f in self.files), *args]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise EnvironmentFailure(f"`{' '.join(argv)}` failed: {err}") from err
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise EnvironmentFailure(f"`{' '.join(argv)}` exited with {done.returncode}:\n{tail}")
        return done.stdout

    def config(self) -> dict[str, Any]:
        """The files as Compose itself reads them (interpolated, normalised), or its error."""
        data = yaml.safe_load(self.run("config", timeout=60)) or {}
        if not isinstance(data.get("services"), Mapping):
            raise ConfigError(f"compose file {self.files[0]} declares no services")
        return data


def owner_token() -> str:
    pid = os.getpid()
    return f"{pid}:{process_start_ticks(pid)}"


# --- the environment -----------------------------------------------------------------------------


class ComposeEnvironment(StartStopContext):
    """A Compose project per run, edges through one proxy sidecar. Single use, like LocalEnvironment."""

    kind = "compose"

    def __init__(
        self,
        catalog: Catalog,
        compose_file: str | Path,
        *,
        run_id: str,
        state_dir: Path,
        tracker: ResourceTracker | None = None,
        proxy_url: str | None = None,
        keep_volumes: bool = False,
        proxy_image: str | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        """Validate everything (compose file, catalog, edges, ports) before anything starts."""
        if proxy_url:
            raise ConfigError(
                f"--chaos-proxy-url {proxy_url}: the compose environment runs its own proxy "
                "sidecar inside the project network; drop the option with --chaos-env compose"
            )
        self.catalog = catalog
        self.compose_file = Path(compose_file).resolve()
        if not self.compose_file.is_file():
            raise ConfigError(
                f"compose file {self.compose_file} does not exist; fix `environments.compose` "
                f"in {catalog.path}"
            )
        self.run_id = run_id
        self.project = project_name(run_id)
        self.state_dir = Path(state_dir)
        self.override_path = self.state_dir / f"{self.project}.override.yaml"
        self.keep_volumes = keep_volumes
        self.ready_timeout = ready_timeout
        self._tracker = tracker
        self._token: str | None = None
        self._proxy_image = proxy_image
        user = ComposeCli(compose_command(), self.project, (self.compose_file,))
        self.config = user.config()
        check_compose(catalog, self.config, self.compose_file)
        self.cli = ComposeCli(user.command, self.project, (self.compose_file, self.override_path))
        self._wiring: Wiring | None = None
        self._proxies: dict[str, ProxyInfo] = {}
        self.attachments: dict[str, list[Attachment]] = {}
        self._started_wall = 0.0
        self._phase = "new"  # new → started → stopped
        self.up_seconds: float | None = None
        self.client = docker_client()
        services = [*self.config["services"], SIDECAR]
        self.lifecycle = ContainerLifecycle(
            self.client, project=self.project, run_id=run_id, services=services
        )
        self.event_log = DockerEventLog(self.client, project=self.project, run_id=run_id)

    @classmethod
    def from_catalog(
        cls,
        catalog: Catalog,
        *,
        run_id: str,
        state_dir: Path,
        tracker: ResourceTracker | None = None,
        proxy_url: str | None = None,
    ) -> ComposeEnvironment:
        """Build from the catalog's `environments.compose` file."""
        path = declared_file(catalog, "compose")
        return cls(
            catalog, path, run_id=run_id, state_dir=state_dir, tracker=tracker, proxy_url=proxy_url
        )

    # Environment

    def start(self) -> None:
        """Record the project in the ledger, `up` the sidecar, create the proxies, `up` the rest."""
        if self._phase != "new":
            raise EnvironmentFailure(
                f"compose project {self.project} is already {self._phase}; create a new environment"
            )
        try:
            self._check_unambiguous()
        except BaseException:
            self.stop()  # still "new": nothing of the existing project is touched
            raise
        self._phase = "started"
        try:
            self._write_override()
            if self._tracker is not None:
                recipe = Recipe("compose.down", {"project": self.project, "run_id": self.run_id})
                description = f"compose project {self.project} ({self.compose_file})"
                self._token = self._tracker.acquire(description, recipe)
            began, self._started_wall = time.monotonic(), time.time() - 1.0
            self.event_log.start(self._started_wall)  # before `up`: Docker keeps too few events
            self.cli.run("up", "-d", SIDECAR)
            self._populate()
            self.cli.run("up", "-d")
            for name in self.service_order():
                self.wait_ready(name)
            self.up_seconds = time.monotonic() - began
            self.attachments = {n: self.lifecycle.attachments(n) for n in self.lifecycle.services}
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """`down` (volumes too unless kept), then remove any labelled leftover; idempotent.

        Fails (keeping the ledger entry for `chaos clean`) only when something of ours is left.
        """
        if self._phase == "stopped":
            return
        started, self._phase = self._phase == "started", "stopped"
        self.event_log.stop()  # first: nothing may leave its thread behind
        problems: list[str] = []
        if started:
            args = ["down", "--remove-orphans", "--timeout", str(STOP_GRACE)]
            try:
                self.cli.run(*args, *([] if self.keep_volumes else ["-v"]))
            except EnvironmentFailure as err:
                problems.append(str(err))
            try:  # the backstop: whatever `down` missed, by our labels only
                remove_run_objects(
                    self.client, self.run_id, self.project, volumes=not self.keep_volumes
                )
                left = self._left()
                problems = [*problems, f"left: {', '.join(left)}"] if left else []
            except docker.errors.DockerException as err:
                problems.append(f"cannot remove labelled leftovers: {err}")
        self.override_path.unlink(missing_ok=True)
        self.client.close()
        if problems:
            raise EnvironmentFailure(
                f"stopping compose project {self.project} failed: {'; '.join(problems)}. Remove "
                f"what is left with `chaos clean` or `docker rm -f $(docker ps -aq --filter "
                f"label={RUN_LABEL}={self.run_id})`"
            )
        if self._token is not None and self._tracker is not None:
            self._tracker.release(self._token)
            self._token = None

    def _left(self) -> list[str]:
        """Our containers and networks still present (volumes may be kept on purpose)."""
        labels = {"label": [f"{RUN_LABEL}={self.run_id}", f"{PROJECT_LABEL}={self.project}"]}
        left = [c.name for c in self.client.containers.list(all=True, filters=labels)]
        return left + [n.name for n in self.client.networks.list(filters=labels)]

    def service_order(self) -> list[str]:
        """The sidecar (it carries the edges), catalog services in restore order, then the rest."""
        order = [SIDECAR, *self.catalog.restore_sequence()]
        return order + [name for name in self.config["services"] if name not in order]

    def endpoint(self, service: str) -> str:
        self.catalog.service(service)
        return f"http://127.0.0.1:{self._started().host_ports[service]}"

    def proxy(self) -> ToxiproxyClient:
        return ToxiproxyClient(f"http://127.0.0.1:{self._started().admin_port}")

    def proxy_name(self, edge: Edge) -> str:
        return proxy_name(edge)

    @property
    def declared_proxies(self) -> Mapping[str, ProxyInfo]:
        """The proxies as created at start (the state reconciliation returns to)."""
        return dict(self._proxies)

    def healthy(self, service: str) -> bool:
        port = self._started().host_ports[self.catalog.service(service).name]
        return check_health(
            "127.0.0.1", port, self.catalog.services[service].health, HEALTH_TIMEOUT
        )

    def ready(self, service: str) -> bool:
        """Running, unpaused, Docker healthcheck (if any) healthy, and the catalog health passes."""
        try:
            state = self.lifecycle.state(service)
        except (FaultError, docker.errors.NotFound):
            return False
        health = (state.get("Health") or {}).get("Status", "healthy")
        if not state.get("Running") or state.get("Paused") or health != "healthy":
            return False
        if service == SIDECAR:
            return self._admin_answers()
        return service not in self.catalog.services or self.healthy(service)

    def _admin_answers(self) -> bool:
        try:
            self.proxy().version()
        except ProxyError:
            return False
        return True

    def wait_ready(self, service: str, timeout: float | None = None) -> None:
        """Wait (bounded) until `ready(service)`; the error shows its state and last log lines."""
        limit = self.ready_timeout if timeout is None else timeout
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(limit),
            wait=tenacity.wait_fixed(HEALTH_POLL),
            retry=tenacity.retry_if_result(lambda ok: not ok),
            retry_error_callback=lambda _: False,
        )
        if not retrying(self.ready, service):
            raise EnvironmentFailure(
                f"service {service!r} of compose project {self.project} did not become ready "
                f"within {limit:.0f}s ({self._state_text(service)}); last log lines:\n"
                f"{self._log_tail(service)}\nFix the service, or its healthcheck in "
                f"{self.compose_file}"
            )

    def reconcile(self) -> list[str]:
        """Return to the declared state; the repairs made are evidence the system did not heal."""
        from reconcilers.environment import reconcile_compose

        if self._phase != "started":
            raise EnvironmentFailure(
                f"cannot reconcile compose project {self.project}: {self._phase}"
            )
        return reconcile_compose(self)

    def describe(self) -> dict[str, str]:
        wiring = self._wiring
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "project": self.project,
            "compose": " ".join(self.cli.command),
            "compose_file": str(self.compose_file),
            "override": str(self.override_path),
            "proxy": f"built-in sidecar {wiring.proxy_image if wiring else '-'}",
            "proxy_api": self.proxy().url if wiring else "-",
            "services": ", ".join(f"{n}={self.endpoint(n)}" for n in self.catalog.services)
            if wiring else "-",
        }  # fmt: skip

    @property
    def events(self) -> list[LifecycleEvent]:
        """Lifecycle events of the project's containers since start, collected as they happened."""
        return self.event_log.events()

    # internals

    def _started(self) -> Wiring:
        if self._wiring is None:
            raise EnvironmentFailure(f"compose project {self.project} is not started")
        return self._wiring

    def _check_unambiguous(self) -> None:
        """Refuse a project name that already has objects: they are not ours to touch."""
        label = {"label": f"{PROJECT_LABEL}={self.project}"}
        existing = [c.name for c in self.client.containers.list(all=True, filters=label)]
        existing += [n.name for n in self.client.networks.list(filters=label)]
        if existing:
            raise EnvironmentFailure(
                f"a compose project named {self.project} already exists ({', '.join(existing)}); "
                "refusing to share it. Remove it (`docker-compose -p "
                f"{self.project} down`) or use another run id"
            )

    def _write_override(self) -> None:
        image = self._proxy_image
        if image is None:
            from chaos.images import ensure_images

            image = ensure_images(quiet=True).proxy
        # fixed for the run, so endpoints survive restarts
        *ports, admin = free_ports(["127.0.0.1"] * (len(self.catalog.services) + 1))
        self._wiring = Wiring(
            self.run_id,
            owner_token(),
            image,
            dict(zip(self.catalog.services, ports, strict=True)),
            admin,
        )
        raw = yaml.safe_load(self.compose_file.read_text()) or {}
        version = str(raw["version"]) if isinstance(raw, dict) and "version" in raw else None
        document = build_override(self.catalog, self.config, self._wiring, version)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.override_path.write_text(yaml.safe_dump(document, sort_keys=False))

    def _populate(self) -> None:
        """Create one proxy per edge in the sidecar, as soon as its admin API answers."""
        self.wait_ready(SIDECAR)
        ports = edge_ports(self.catalog)
        wanted = [
            {"name": proxy_name(edge), "listen": f"0.0.0.0:{ports[proxy_name(edge)]}",
             "upstream": f"{edge.provider}:{self.catalog.services[edge.provider].port}"}
            for edge in self.catalog.edges
        ]  # fmt: skip
        if wanted:
            self._proxies = {info.name: info for info in self.proxy().populate(wanted)}

    def _state_text(self, service: str) -> str:
        try:
            state = self.lifecycle.state(service)
        except Exception as err:  # the error text is the best description left
            return str(err)
        health = (state.get("Health") or {}).get("Status", "no healthcheck")
        return f"status {state.get('Status')}, health {health}, exit code {state.get('ExitCode')}"

    def _log_tail(self, service: str, lines: int = 20) -> str:
        try:
            raw = self.lifecycle.container(service).logs(tail=lines)
        except Exception as err:  # the error text is the best description left
            return f"(no logs: {err})"
        return raw.decode(errors="replace").rstrip() or "(empty log)"
