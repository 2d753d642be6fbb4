"""The Compose override, computed purely from the catalog and the user's normalised compose config.

Kept apart from the environment (which runs Compose) so the rules — what is refused, what is
labelled, where each edge listens — are testable without Docker.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.catalog import Catalog, Edge
from chaos.errors import CatalogError, ConfigError
from faults.container import OWNER_LABEL, RUN_LABEL

SIDECAR = "chaos-proxy"  # the proxy sidecar's service name in the project
ADMIN_PORT = 8474  # the sidecar's admin API port inside the project network
EDGE_PORT_BASE = 18000  # edge i listens on EDGE_PORT_BASE + i inside the sidecar


def service_networks(service: Mapping[str, Any]) -> list[str]:
    """The networks a service joins (Compose's `default` when it names none)."""
    networks = service.get("networks")
    if not networks:
        return [] if service.get("network_mode") else ["default"]
    return list(networks)


def port_host_ip(entry: Any) -> str | None:
    """The host address a `ports` entry publishes on (None: every interface)."""
    if isinstance(entry, Mapping):
        return entry.get("host_ip") or None
    parts = str(entry).split("/")[0].rsplit(":", 2)
    return parts[0].strip("[]") or None if len(parts) == 3 else None


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def published_port(entry: Any) -> str | None:
    """The host port a `ports` entry publishes on (None: Compose picks a free one)."""
    if isinstance(entry, Mapping):
        published = str(entry.get("published") or "")
    else:
        parts = str(entry).split("/")[0].rsplit(":", 2)
        published = parts[-2] if len(parts) >= 2 else ""
    return None if published in ("", "0") else published


def fixed_host_bindings(config: Mapping[str, Any]) -> list[str]:
    """What two projects of the same compose file cannot both have: host ports, container names."""
    fixed: list[str] = []
    for name, service in (config.get("services") or {}).items():
        for entry in service.get("ports") or ():
            port = published_port(entry)
            if port is not None:
                fixed.append(f"{name} host port {port}")
        if service.get("container_name"):
            fixed.append(f"{name} container_name {service['container_name']}")
    return fixed


def check_compose(catalog: Catalog, config: Mapping[str, Any], compose_file: Path) -> None:
    """Refuse what the environment cannot honour, before anything is started."""
    services = config["services"]
    for name in catalog.services:
        if name not in services:
            raise CatalogError(
                f"catalog service {name!r} is not a service of {compose_file} (it has: "
                f"{', '.join(services)}); rename it in the catalog or add it to the compose file",
                file=catalog.path,
                field=f"services.{name}",
            )
    if SIDECAR in services:
        raise ConfigError(f"{compose_file}: the service name {SIDECAR!r} is reserved for our proxy")
    for name, service in services.items():
        for entry in service.get("ports") or ():
            if not is_loopback(port_host_ip(entry)):
                raise ConfigError(
                    f"{compose_file}: service {name!r} publishes port {entry!r} on every "
                    "interface; experiments publish only on 127.0.0.1 and Compose cannot override "
                    "a published port: write it as '127.0.0.1:HOST:CONTAINER' or remove it (every "
                    "catalog port is published on 127.0.0.1 anyway)"
                )
    for edge in catalog.edges:
        _check_edge(edge, services, compose_file, catalog.path)


def _check_edge(edge: Edge, services: Mapping[str, Any], compose_file: Path, catalog: Path) -> None:
    environment = services[edge.consumer].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    if edge.env not in environment:
        raise CatalogError(
            f"edge {edge.name}: service {edge.consumer!r} in {compose_file} sets no environment "
            f"variable {edge.env}; declare it there (experiments point it at the proxy) or set "
            "this edge's `env` to the variable the service reads",
            file=catalog,
            field=f"edges[{edge.name}].env",
        )
    for name in (edge.consumer, edge.provider):
        if not service_networks(services[name]):
            raise ConfigError(
                f"{compose_file}: service {name!r} (edge {edge.name}) uses network_mode "
                f"{services[name]['network_mode']!r}; the proxy can only reach services on "
                "project networks"
            )


def proxy_name(edge: Edge) -> str:
    return f"{edge.consumer}--{edge.provider}"


@dataclass(frozen=True)
class Wiring:
    """Host ports and proxy listen ports decided for one run."""

    run_id: str
    owner: str  # "<pid>:<start ticks>" of the process that owns the project
    proxy_image: str
    host_ports: Mapping[str, int]  # catalog service -> port on 127.0.0.1
    admin_port: int  # the sidecar's admin API on 127.0.0.1

    @property
    def labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id, OWNER_LABEL: self.owner}


def edge_ports(catalog: Catalog) -> dict[str, int]:
    """Each edge's listen port inside the sidecar, by proxy name."""
    return {proxy_name(edge): EDGE_PORT_BASE + i for i, edge in enumerate(catalog.edges)}


def build_override(
    catalog: Catalog, config: Mapping[str, Any], wiring: Wiring, version: str | None = None
) -> dict[str, Any]:
    """The override document: labels everywhere, loopback ports, consumers pointed at the sidecar."""
    ports = edge_ports(catalog)
    services: dict[str, Any] = {}
    for name in config["services"]:
        services[name] = {"labels": wiring.labels}
        if name in wiring.host_ports:
            container_port = catalog.services[name].port
            services[name]["ports"] = [f"127.0.0.1:{wiring.host_ports[name]}:{container_port}"]
    for edge in catalog.edges:
        address = edge.address(SIDECAR, ports[proxy_name(edge)])
        services[edge.consumer].setdefault("environment", {})[edge.env] = address
    sidecar_networks = sorted(
        {n for e in catalog.edges for s in (e.consumer, e.provider)
         for n in service_networks(config["services"][s])} or {"default"}
    )  # fmt: skip
    services[SIDECAR] = {
        "image": wiring.proxy_image,
        "labels": wiring.labels,
        "ports": [f"127.0.0.1:{wiring.admin_port}:{ADMIN_PORT}"],
        "networks": sidecar_networks,
    }
    used = {n for s in config["services"].values() for n in service_networks(s)}
    document: dict[str, Any] = {} if version is None else {"version": version}
    document["services"] = services
    document["networks"] = _labelled(config.get("networks") or {}, used | {"default"}, wiring)
    volumes = _labelled(config.get("volumes") or {}, set(), wiring)
    if volumes:
        document["volumes"] = volumes
    return document


def _labelled(declared: Mapping[str, Any], extra: set[str], wiring: Wiring) -> dict[str, Any]:
    """Full definitions (docker-compose v1 replaces, not merges, them) plus our labels."""
    out: dict[str, Any] = {}
    for name in sorted(set(declared) | extra):
        definition = dict(declared.get(name) or {})
        if definition.get("external"):
            continue
        labels = definition.get("labels") or {}
        if isinstance(labels, list):
            labels = dict(item.partition("=")[::2] for item in labels)
        definition["labels"] = {**labels, **wiring.labels}
        out[name] = definition
    return out
