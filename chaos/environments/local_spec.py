"""How each catalog service runs as a local process (local.yaml), validated against the catalog."""

from __future__ import annotations

import enum
import ipaddress
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from chaos.catalog import Catalog, Service
from chaos.errors import CatalogError, UnknownTarget
from chaos.yamlsource import Node, check_version, did_you_mean, load_yaml

SUPPORTED_VERSION = 1
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_SERVICE_KEYS = (
    *("command", "cwd", "env", "host", "port", "restart"),
    *("ready_timeout", "stop_grace", "setup"),
)


class RestartPolicy(enum.Enum):
    """What the supervisor does when a process exits on its own."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NO = "no"


@dataclass(frozen=True)
class LocalService:
    """One catalog service as a local process under the supervisor."""

    name: str
    command: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    host: str | None  # None: the environment assigns a 127.0.0.x address
    port: int  # 0: a free port, chosen when the environment is built
    restart: RestartPolicy
    ready_timeout: float
    stop_grace: float
    setup: tuple[str, ...] | None


@dataclass(frozen=True)
class LocalSpec:
    """Every catalog service's process definition, keyed by service name."""

    path: Path
    services: Mapping[str, LocalService]

    def service(self, name: str) -> LocalService:
        try:
            return self.services[name]
        except KeyError:
            valid = ", ".join(self.services)
            hint = did_you_mean(name, self.services)
            raise UnknownTarget(
                f"unknown service {name!r}{hint}; {self.path} runs: {valid}"
            ) from None


def load_local_spec(path: str | Path, catalog: Catalog) -> LocalSpec:
    """Read local.yaml; every catalog service must appear, and nothing else."""
    root = load_yaml(path)
    check_version(root, supported=SUPPORTED_VERSION, required=False)
    root.allow_keys("version", "services")
    base = Path(path).resolve().parent
    services_node = root.get_mapping("services")
    services: dict[str, LocalService] = {}
    for entry in services_node.entries():
        name = entry.key or ""
        if name not in catalog.services:
            valid = ", ".join(catalog.services)
            hint = did_you_mean(name, catalog.services)
            message = f"service {name!r}{hint} is not in the catalog {catalog.path}; it declares"
            raise entry.error(f"{message}: {valid}", at_key=True)
        services[name] = _read_service(entry, catalog, base)
    for name in catalog.services:
        if name not in services:
            line = services_node.key_line or services_node.line
            message = f"catalog service {name!r} has no entry; add services.{name}.command"
            raise CatalogError(message, file=path, line=line, field=f"services.{name}")
    _check_addresses(services, services_node)
    ordered = {name: services[name] for name in catalog.services}
    return LocalSpec(path=Path(path).resolve(), services=MappingProxyType(ordered))


def _read_service(node: Node, catalog: Catalog, base: Path) -> LocalService:
    node.as_mapping().allow_keys(*_SERVICE_KEYS)
    service = catalog.service(node.key or "")
    return LocalService(
        name=service.name,
        command=node.get("command", _read_command),
        cwd=node.get("cwd", lambda n: _read_dir(n, base), base),
        env=MappingProxyType(node.get("env", lambda n: _read_env(n, catalog, service), {})),
        host=node.get("host", _read_loopback, None),
        port=node.get_int("port", service.port, lo=0, hi=65535),  # 0: a free one per run
        restart=RestartPolicy(
            node.get_choice("restart", [p.value for p in RestartPolicy], "on-failure")
        ),
        ready_timeout=node.get_duration("ready_timeout", 15.0, positive=True),
        stop_grace=node.get_duration("stop_grace", 3.0),
        setup=node.get("setup", _read_command, None),
    )


def _read_command(node: Node) -> tuple[str, ...]:
    """A command as a list of strings, or one string split like a shell would (no shell runs)."""
    if node.is_list:
        words = tuple(item.as_str() for item in node.as_list())
    else:
        text = node.as_str()
        try:
            words = tuple(shlex.split(text))
        except ValueError as err:
            raise node.error(f"cannot split {text!r} into words ({err}); fix the quotes") from err
    if not words or not words[0]:
        raise node.error("the command is empty; give the program and its arguments")
    return words


def _read_dir(node: Node, base: Path) -> Path:
    directory = (base / node.as_str()).resolve()
    if not directory.is_dir():
        raise node.error(f"directory {directory} does not exist (relative to {base})")
    return directory


def _read_env(node: Node, catalog: Catalog, service: Service) -> dict[str, str]:
    wired = {edge.env: edge.name for edge in catalog.edges_from(service.name)}
    env: dict[str, str] = {}
    for entry in node.as_mapping().entries():
        key = entry.key or ""
        if key in wired:
            message = f"{key} is set by the edge '{wired[key]}' (through its proxy); remove it here"
            raise entry.error(message, at_key=True)
        if not key or "=" in key or "\0" in key:
            raise entry.error(f"{key!r} is not a usable environment variable name", at_key=True)
        value = entry.scalar if entry.is_scalar else None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise entry.error(f"expected a string or a number, got {entry.describe()}; quote it")
        env[key] = str(value)
    return env


def _read_loopback(node: Node) -> str:
    text = node.as_str()
    try:
        address = ipaddress.ip_address(text)
    except ValueError as err:
        raise node.error(f"{text!r} is not an IP address; use one in 127.0.0.0/8") from err
    if address not in LOOPBACK:
        raise node.error(f"{text} is not a loopback address; use one in 127.0.0.0/8")
    return text


def _check_addresses(services: Mapping[str, LocalService], services_node: Node) -> None:
    """Two services pinned to the same host and port cannot both listen."""
    taken: dict[tuple[str, int], str] = {}
    for name, service in services.items():
        if service.host is None or service.port == 0:
            continue
        where = (service.host, service.port)
        if where in taken:
            node = services_node.require(name).require("host")
            message = f"{taken[where]} already uses {service.host}:{service.port}"
            raise node.error(f"{message}; give one of them another host or port")
        taken[where] = name
