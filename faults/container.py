"""Container faults for Compose environments: crash, stop, pause, restart, disconnect — by label only.

Targets are found only by the labels `com.docker.compose.project` + `com.docker.compose.service`
+ our `io.pytest-chaos.run`, never by name patterns, so nothing outside the run is ever touched.
A crash is SIGKILL of the container's main process by its host PID (Docker's restart policy then
applies), unlike `docker kill`, which Docker records as a manual stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import docker
import docker.errors

from chaos.environments.restart_policy import EventKind, LifecycleEvent
from chaos.errors import EngineUnreachable, FaultError, UnknownTarget
from faults.base import NOTHING_TO_REVERT, Injection, Recipe

if TYPE_CHECKING:
    from docker.models.containers import Container

    from chaos.environments.base import Environment

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
RUN_LABEL = "io.pytest-chaos.run"
OWNER_LABEL = "io.pytest-chaos.owner"  # "<pid>:<start ticks>" of the process that created it
DOCKER_TIMEOUT = 60  # seconds for one Docker API call (a stop waits for the grace period)
EFFECT_TIMEOUT = 10.0  # bound on waiting to observe a fault's effect
EFFECT_POLL = 0.02


def docker_client() -> docker.DockerClient:
    """A client of the local engine; an unreachable engine is an EnvironmentFailure saying so."""
    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT)
        client.ping()
    except docker.errors.DockerException as err:
        where = os.environ.get("DOCKER_HOST", "the default socket /var/run/docker.sock")
        raise EngineUnreachable(
            f"cannot reach the Docker engine at {where}: {err}; start Docker or set DOCKER_HOST"
        ) from err
    return client


@contextlib.contextmanager
def _client() -> Iterator[docker.DockerClient]:
    client = docker_client()
    try:
        yield client
    finally:
        client.close()


def run_filter(run_id: str, project: str | None = None, service: str | None = None) -> list[str]:
    """Docker label filters selecting our objects of one run (and one project, one service)."""
    labels = [f"{RUN_LABEL}={run_id}"]
    if project is not None:
        labels.append(f"{PROJECT_LABEL}={project}")
    if service is not None:
        labels.append(f"{SERVICE_LABEL}={service}")
    return labels


def wait_until(check: Callable[[], bool], timeout: float = EFFECT_TIMEOUT) -> bool:
    """Poll `check` until it holds or `timeout` passes; True when it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(EFFECT_POLL)
    return check()


def pid_is_container(pid: int, container_id: str) -> bool:
    """Whether host `pid` runs in the container (its cgroup path names the container id)."""
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return container_id in cgroups


@contextlib.contextmanager
def docker_action(action: str, service: str) -> Iterator[None]:
    """Docker API errors of a fault action as FaultError naming the action and the service."""
    try:
        yield
    except docker.errors.APIError as err:
        raise FaultError(f"cannot {action} service {service!r}: {err.explanation or err}") from err


@dataclass(frozen=True)
class Attachment:
    """A container's place on one network, recorded so that a reconnect restores it exactly."""

    network: str  # network id
    name: str
    aliases: tuple[str, ...]
    ipv4: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "name": self.name, "aliases": list(self.aliases),
                "ipv4": self.ipv4}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attachment:
        return cls(str(data["network"]), str(data.get("name", data["network"])),
                   tuple(data.get("aliases") or ()), data.get("ipv4"))  # fmt: skip


class ContainerLifecycle:
    """ServiceLifecycle for a Compose project: one container per service, found by labels."""

    def __init__(
        self, client: docker.DockerClient, *, project: str, run_id: str, services: Sequence[str]
    ) -> None:
        self.client = client
        self.project = project
        self.run_id = run_id
        self.services = tuple(services)

    def container(self, service: str) -> Container:
        """The service's one container of this project and run; clear errors otherwise."""
        if service not in self.services:
            valid = ", ".join(self.services) or "(none)"
            raise UnknownTarget(f"no service {service!r} in compose project {self.project}; "
                                f"its services: {valid}")  # fmt: skip
        found = self.client.containers.list(
            all=True, filters={"label": run_filter(self.run_id, self.project, service)}
        )
        if len(found) != 1:
            what = "no container" if not found else f"{len(found)} containers"
            raise FaultError(
                f"service {service!r} of compose project {self.project} has {what} labelled "
                f"{RUN_LABEL}={self.run_id}; faults act on exactly one (scale it to 1, or "
                "reconcile the environment if it was removed)"
            )
        return found[0]

    def state(self, service: str) -> Mapping[str, Any]:
        """Docker's State of the service's container (Status, Running, Paused, Pid, Health…)."""
        container = self.container(service)
        return container.attrs["State"]

    def crash(self, service: str) -> None:
        """SIGKILL the main process by its host PID: a crash, so the restart policy applies."""
        container = self.container(service)
        pid = int(container.attrs["State"].get("Pid") or 0)
        if not pid or not container.attrs["State"].get("Running"):
            raise FaultError(f"cannot crash service {service!r}: its container is not running")
        if not pid_is_container(pid, container.id):
            raise FaultError(
                f"cannot crash service {service!r}: its main process (host pid {pid}) is not "
                "visible from here (a remote or virtualised Docker engine?); a crash fault needs "
                "the engine on this host"
            )
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it died on its own in between: crashed all the same
        except PermissionError as err:
            raise FaultError(
                f"cannot SIGKILL pid {pid} of service {service!r}: {err}; crash faults need the "
                "right to signal container processes (run as root, or use stop/pause instead)"
            ) from err
        if not wait_until(lambda: self._main_pid(container) != pid):
            raise FaultError(f"service {service!r}: pid {pid} still runs 10s after SIGKILL")

    def stop(self, service: str) -> None:
        """`docker stop` (SIGTERM, SIGKILL after the grace): a manual stop, no restart."""
        with docker_action("stop", service):
            self.container(service).stop()

    def start(self, service: str) -> None:
        container = self.container(service)
        if not container.attrs["State"].get("Running"):
            with docker_action("start", service):
                container.start()

    def pause(self, service: str) -> None:
        container = self.container(service)
        if not container.attrs["State"].get("Paused"):
            with docker_action("pause", service):
                container.pause()

    def resume(self, service: str) -> None:
        container = self.container(service)
        if container.attrs["State"].get("Paused"):
            with docker_action("resume", service):
                container.unpause()

    def restart(self, service: str) -> None:
        with docker_action("restart", service):
            self.container(service).restart()

    def is_running(self, service: str) -> bool:
        return bool(self.state(service).get("Running"))

    def is_paused(self, service: str) -> bool:
        return bool(self.state(service).get("Paused"))

    def revert_recipe(self, action: str, service: str) -> Recipe:
        """pause → docker.unpause, stop → docker.start (by container id); the rest need none."""
        container = self.container(service)
        args = {"container": container.id, "run_id": self.run_id, "service": service}
        if action == "pause":
            return Recipe("docker.unpause", args)
        if action == "stop":
            return Recipe("docker.start", args)
        if action in ("kill", "crash", "restart"):
            return NOTHING_TO_REVERT
        raise FaultError(
            f"no revert recipe for container action {action!r} on {service!r}; "
            "known actions: kill, stop, pause, restart"
        )

    def attachments(self, service: str) -> list[Attachment]:
        """The service's networks of this project, with the aliases to restore on reconnect."""
        container = self.container(service)
        ours = {
            net.id: net.name
            for net in self.client.networks.list(
                filters={"label": f"{PROJECT_LABEL}={self.project}"}
            )
        }
        found: list[Attachment] = []
        for name, info in (container.attrs["NetworkSettings"].get("Networks") or {}).items():
            if info.get("NetworkID") in ours:
                ipam = info.get("IPAMConfig") or {}
                aliases = tuple(a for a in info.get("Aliases") or () if a != container.id[:12])
                found.append(Attachment(info["NetworkID"], name, aliases, ipam.get("IPv4Address")))
        return found

    def disconnect(self, service: str, attachments: Sequence[Attachment]) -> None:
        """Cut the container off its project networks; wait until Docker shows it detached."""
        container = self.container(service)
        for attachment in attachments:
            with docker_action("disconnect", service), contextlib.suppress(docker.errors.NotFound):
                self.client.networks.get(attachment.network).disconnect(container, force=True)
        wanted = {a.network for a in attachments}
        if not wait_until(lambda: not (wanted & set(_network_ids(self._reload(container))))):
            raise FaultError(f"service {service!r} is still attached to its networks")

    def _reload(self, container: Container) -> Container:
        container.reload()
        return container

    def _main_pid(self, container: Container) -> int:
        try:
            return int(self._reload(container).attrs["State"].get("Pid") or 0)
        except docker.errors.NotFound:
            return 0


def _network_ids(container: Container) -> list[str]:
    networks = container.attrs["NetworkSettings"].get("Networks") or {}
    return [info.get("NetworkID", "") for info in networks.values()]


LIFECYCLE_ACTIONS = ("kill", "die", "start", "stop", "pause", "unpause", "health_status")
"""The Docker actions docker_lifecycle_events reads: the daemon-side event filter of a project."""
_DOCKER_EVENTS = {
    "pause": EventKind.PAUSED,
    "unpause": EventKind.RESUMED,
    "stop": EventKind.STOPPED,
    "health_status: healthy": EventKind.READY,
}


def docker_lifecycle_events(
    stream: Sequence[Mapping[str, Any]] | Any, offset: float
) -> list[LifecycleEvent]:
    """Docker container events as LifecycleEvents (`offset` turns wall time into monotonic).

    A `die` not preceded by a `kill` through the API is unrequested: a crash, which the restart
    policy handles; its next `start` is a restart.
    """
    events: list[LifecycleEvent] = []
    killed: set[str] = set()
    died: set[str] = set()
    for raw in stream:
        actor = raw.get("Actor") or {}
        attributes, cid = actor.get("Attributes") or {}, actor.get("ID", "")
        service, action = attributes.get(SERVICE_LABEL, ""), raw.get("Action", "")
        wall = raw.get("timeNano", 0) / 1e9
        extra: dict[str, Any] = {}
        if action == "kill":
            killed.add(cid)
            continue
        if action == "die":
            kind = EventKind.EXITED
            extra = {"code": int(attributes.get("exitCode", 0)), "requested": cid in killed}
            killed.discard(cid)
            died.add(cid)
        elif action == "start":
            kind = EventKind.RESTARTED if cid in died else EventKind.STARTED
        elif action in _DOCKER_EVENTS:
            kind = _DOCKER_EVENTS[action]
        else:
            continue
        events.append(LifecycleEvent(wall + offset, wall, service, kind, **extra))
    return events


@dataclass(frozen=True)
class Disconnect:
    """Partition one service: its container leaves every project network until reverted."""

    kind: ClassVar[str] = "disconnect"
    target: str

    def params(self) -> dict[str, Any]:
        return {}

    def plan(self, env: Environment) -> Injection:
        """Resolve the service and its networks before anything happens."""
        env.catalog.service(self.target)
        lifecycle = env.lifecycle
        if not isinstance(lifecycle, ContainerLifecycle):
            raise FaultError(
                f"cannot disconnect service {self.target!r} in a {env.kind} environment: network "
                "disconnects need containers; run with --chaos-env compose (or use an outage "
                "of its edges instead)"
            )
        container = lifecycle.container(self.target)
        attachments = lifecycle.attachments(self.target)
        if not attachments:
            raise FaultError(
                f"service {self.target!r} is on no network of project {lifecycle.project} "
                "(already disconnected?); reconcile the environment before injecting"
            )
        networks = [a.to_json() for a in attachments]
        recipe = Recipe(
            "docker.network_connect",
            {"container": container.id, "run_id": lifecycle.run_id, "service": self.target,
             "networks": networks},
        )  # fmt: skip
        names = ", ".join(a.name for a in attachments)
        return Injection(
            description=f"disconnect {self.target} from {names}",
            recipe=recipe,
            apply=lambda: lifecycle.disconnect(self.target, attachments),
            revert=lambda: network_connect_recipe(**recipe.args),
        )


def disconnect(service: str) -> Disconnect:
    """Partition `service` from the others (and from the proxy) until the fault is reverted."""
    return Disconnect(service)


KINDS: tuple[type, ...] = (Disconnect,)


# --- revert recipes a fresh process can run (idempotent; "already gone" is success) -------------


def _our_container(client: docker.DockerClient, container: str, run_id: str) -> Container | None:
    """The recorded container if it still exists and still is ours (labelled with our run)."""
    try:
        found = client.containers.get(container)
    except docker.errors.NotFound:
        return None
    return found if found.labels.get(RUN_LABEL) == run_id else None


def unpause_recipe(*, container: str, run_id: str, service: str = "") -> None:
    """Unpause the recorded container (if it still exists and is paused)."""
    with _client() as client:
        found = _our_container(client, container, run_id)
        if found is not None and found.attrs["State"].get("Paused"):
            with contextlib.suppress(docker.errors.NotFound):
                found.unpause()


def start_recipe(*, container: str, run_id: str, service: str = "") -> None:
    """Start the recorded container again (if it still exists and is not running)."""
    with _client() as client:
        found = _our_container(client, container, run_id)
        if found is not None and not found.attrs["State"].get("Running"):
            with contextlib.suppress(docker.errors.NotFound):
                found.start()


def network_connect_recipe(
    *, container: str, run_id: str, networks: Sequence[Mapping[str, Any]], service: str = ""
) -> None:
    """Reconnect the container to each recorded network with its recorded aliases (and IP)."""
    with _client() as client:
        found = _our_container(client, container, run_id)
        if found is None:
            return
        present = set(_network_ids(found))
        for attachment in map(Attachment.from_json, networks):
            if attachment.network in present:
                continue
            try:
                client.networks.get(attachment.network).connect(
                    found, aliases=list(attachment.aliases), ipv4_address=attachment.ipv4
                )
            except docker.errors.NotFound:
                continue  # the network (or the container) is gone: nothing to restore
            except docker.errors.APIError as err:
                if "already exists" not in str(err):
                    raise FaultError(
                        f"cannot reconnect container {container[:12]} ({service}) to network "
                        f"{attachment.name}: {err}; reconnect it with `docker network connect "
                        f"{' '.join('--alias ' + a for a in attachment.aliases)} "
                        f"{attachment.name} {container[:12]}`"
                    ) from err


def remove_run_objects(
    client: docker.DockerClient, run_id: str, project: str | None = None, *, volumes: bool = True
) -> list[str]:
    """Remove every container, network (and volume) labelled with our run (and project)."""
    labels = run_filter(run_id, project)
    removed: list[str] = []
    for container in client.containers.list(all=True, filters={"label": labels}):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            removed.append(f"container {container.name}")
    for network in client.networks.list(filters={"label": labels}):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
            removed.append(f"network {network.name}")
    for volume in client.volumes.list(filters={"label": labels}) if volumes else ():
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
    return removed


def compose_down_recipe(*, project: str, run_id: str, **_: Any) -> None:
    """Remove a dead run's Compose project: its labelled containers, networks and volumes."""
    with _client() as client:
        remove_run_objects(client, run_id, project)


RECIPE_ACTIONS: dict[str, Callable[..., None]] = {
    "docker.unpause": unpause_recipe,
    "docker.start": start_recipe,
    "docker.network_connect": network_connect_recipe,
    "compose.down": compose_down_recipe,
}
