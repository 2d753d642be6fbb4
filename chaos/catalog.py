"""The service catalog (chaos.yaml) read into typed objects, validated before anything starts."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

# The model lives in chaos.catalog_model; every public name of it stays importable from here.
from chaos.catalog_model import (
    EDGE_ARROW,
    Catalog,
    Edge,
    HttpStep,
    Journey,
    Service,
    Slo,
)
from chaos.catalog_model import TIERS as TIERS
from chaos.catalog_model import fill_placeholders as fill_placeholders
from chaos.catalog_model import status_accepted as status_accepted
from chaos.yamlsource import Node, check_version, did_you_mean, load_yaml

SUPPORTED_VERSION = 1
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TOP_KEYS = ("version", "name", "environments", "services", "edges", "journeys", "failure_modes")
_SERVICE_KEYS = ("tier", "description", "depends_on", "restore_order", "rto", "port", "health")
_EDGE_KEYS = ("from", "to", "env", "url")
_STEP_KEYS = ("method", "service", "path", "json", "expect")
_SLO_KEYS = ("success", "p95", "p99")
_JOURNEY_KEYS = (
    *("description", "tier", "services", "customers", "interval", "timeout"),
    *("steps", "call", "slo"),
)


def load_catalog(path: str | Path, *, fault_kinds: Collection[str] | None = None) -> Catalog:
    """Read and validate a catalog; any problem is one CatalogError naming file, line and field."""
    root = load_yaml(path)
    check_version(root, supported=SUPPORTED_VERSION, required=True)
    root.allow_keys(*_TOP_KEYS)
    base = Path(path).resolve().parent
    services = _read_services(root.get_mapping("services"))
    edges = _read_edges(root.get_list("edges", []), services)
    journeys = {j.key: _read_journey(j, services) for j in _named(root.get_mapping("journeys"))}
    modes = _read_failure_modes(root.get_mapping("failure_modes"), fault_kinds)
    envs = root.get("environments", lambda node: _read_environments(node, base), {})
    return Catalog(
        path=Path(path).resolve(),
        name=root.get("name", _read_name, base.name),
        services=MappingProxyType(services),
        edges=edges,
        journeys=MappingProxyType(journeys),
        required_modes=MappingProxyType(modes),
        environments=MappingProxyType(envs),
    )


def _read_name(node: Node) -> str:
    name = node.as_str()
    if not _NAME.match(name):
        raise node.error(f"{name!r} is not a valid name: use letters, digits, '_', '.', '-'")
    return name


def _named(node: Node) -> list[Node]:
    """Entries of a mapping of named things (services, journeys); at least one, valid names."""
    entries = node.entries()
    if not entries:
        raise node.error(f"declare at least one entry under '{node.key}'", at_key=True)
    for entry in entries:
        if not _NAME.match(entry.key or ""):
            message = f"{entry.key!r} is not a valid name: use letters, digits, '_', '.', '-'"
            raise entry.error(message, at_key=True)
    return entries


def _known_service(node: Node, services: Mapping[str, Any], name: str | None = None) -> str:
    """`name` (default: the node's string) if it is a catalog service, else an error at `node`."""
    name = node.as_str() if name is None else name
    if name not in services:
        hint = did_you_mean(name, services)
        raise node.error(f"unknown service {name!r}{hint}; known: {', '.join(services)}")
    return name


# -- services ----------------------------------------------------------------------------------


def _read_services(node: Node) -> dict[str, Service]:
    services: dict[str, Service] = {}
    dep_nodes: dict[tuple[str, str], Node] = {}
    for entry in _named(node):
        entry.allow_keys(*_SERVICE_KEYS)
        deps = _read_depends_on(entry, dep_nodes)
        services[entry.key] = Service(
            name=entry.key,
            tier=entry.get_int("tier", lo=1, hi=4),
            description=entry.get_str("description", ""),
            depends_on=deps,
            restore_order=entry.get_int("restore_order", 0, lo=1),
            rto=entry.get_duration("rto", 30.0, positive=True),
            port=entry.get_int("port", lo=1, hi=65535),
            health=entry.get("health", _read_health, "tcp"),
        )
    for dep_node in dep_nodes.values():
        _known_service(dep_node, services)
    order, cycle = _dependency_order({name: s.depends_on for name, s in services.items()})
    if cycle:
        closing = dep_nodes[(cycle[-2], cycle[-1])]
        message = f"dependency cycle {' -> '.join(cycle)}; remove one of these depends_on"
        raise closing.error(message)
    position = {name: index for index, name in enumerate(order, start=1)}
    return {
        name: service if service.restore_order else replace(service, restore_order=position[name])
        for name, service in services.items()
    }


def _read_depends_on(entry: Node, dep_nodes: dict[tuple[str, str], Node]) -> tuple[str, ...]:
    names: list[str] = []
    for item in entry.get_list("depends_on", []):
        name = item.as_str()
        if name in names:
            raise item.error(f"{name!r} is listed twice; keep one")
        names.append(name)
        dep_nodes[(entry.key or "", name)] = item
    return tuple(names)


def _read_health(node: Node) -> str:
    text = node.as_str()
    if text != "tcp" and not text.startswith("/"):
        raise node.error(f"{text!r} is neither 'tcp' nor an HTTP path starting with '/'")
    return text


def _dependency_order(deps: Mapping[str, tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """(dependencies-first order, []) or (partial order, a cycle such as [a, b, a])."""
    order: list[str] = []
    done: set[str] = set()
    remaining = list(deps)
    for _ in range(len(deps)):
        ready = [name for name in remaining if all(dep in done for dep in deps[name])]
        if not ready:
            break
        for name in ready:
            order.append(name)
            done.add(name)
        remaining = [name for name in remaining if name not in done]
    if not remaining:
        return order, []
    path = [remaining[0]]
    for _ in range(len(remaining) + 1):
        step = next(dep for dep in deps[path[-1]] if dep not in done)
        if step in path:
            return order, [*path[path.index(step) :], step]
        path.append(step)
    raise AssertionError("unreachable: a dependency walk of n nodes repeats within n + 1 steps")


# -- edges -------------------------------------------------------------------------------------


def _read_edges(node: list[Node], services: Mapping[str, Service]) -> tuple[Edge, ...]:
    edges: list[Edge] = []
    for item in node:
        edge = _read_edge(item, services)
        for other in edges:
            if (other.consumer, other.provider) == (edge.consumer, edge.provider):
                raise item.error(f"duplicate edge '{edge.name}'; keep one")
            if (other.consumer, other.env) == (edge.consumer, edge.env):
                message = f"'{other.name}' already sets {edge.env} in {edge.consumer}"
                raise item.error(f"{message}; give this edge another 'env'")
        edges.append(edge)
    return tuple(edges)


def _read_edge(item: Node, services: Mapping[str, Service]) -> Edge:
    if item.is_scalar:
        match = EDGE_ARROW.match(item.as_str())
        if not match:
            example = "'orders -> payments' or a mapping with from/to"
            raise item.error(f"expected an edge such as {example}, got {item.describe()}")
        consumer = _known_service(item, services, match["consumer"])
        provider = _known_service(item, services, match["provider"])
        env, url = _default_env(provider), "{host}:{port}"
    else:
        item.as_mapping().allow_keys(*_EDGE_KEYS)
        consumer = _known_service(item.require("from"), services)
        provider = _known_service(item.require("to"), services)
        env = item.get("env", Node.as_env_name, _default_env(provider))
        url = item.get("url", lambda node: node.as_template({"host", "port"}), "{host}:{port}")
    if consumer == provider:
        raise item.error(f"edge from {consumer!r} to itself; an edge joins two services")
    return Edge(consumer=consumer, provider=provider, env=env, url=url)


def _default_env(provider: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", provider.upper()) + "_ADDR"


# -- journeys ----------------------------------------------------------------------------------


def _read_journey(node: Node, services: Mapping[str, Service]) -> Journey:
    node.allow_keys(*_JOURNEY_KEYS)
    if node.has("steps") and node.has("call"):
        message = "give 'steps' (HTTP calls) or 'call', not both"
        raise node.require("call").error(message, at_key=True)
    if not node.has("steps") and not node.has("call"):
        message = "give 'steps' (HTTP calls) or 'call' (a Python callable 'module:attribute')"
        raise node.error(message, at_key=True)
    steps = tuple(_read_step(item, services) for item in node.get_list("steps", []))
    if node.has("steps") and not steps:
        raise node.require("steps").error("give at least one step", at_key=True)
    touched = node.get("services", lambda n: _read_service_list(n, services), None)
    if touched is None:
        touched = tuple(dict.fromkeys(step.service for step in steps))
    best_tier = min((services[name].tier for name in touched), default=1)
    return Journey(
        name=node.key or "",
        description=node.get_str("description", ""),
        tier=node.get_int("tier", best_tier, lo=1, hi=4),
        services=touched,
        customers=node.get_int("customers", 2, lo=1, hi=1000),
        interval=node.get_duration("interval", 0.1, positive=True),
        timeout=node.get_duration("timeout", 2.0, positive=True),
        steps=steps,
        call=node.get("call", _read_call, None),
        slo=node.get("slo", _read_slo, Slo()),
    )


def _read_service_list(node: Node, services: Mapping[str, Service]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_known_service(item, services) for item in node.as_list()))


def _read_step(item: Node, services: Mapping[str, Service]) -> HttpStep:
    if item.is_scalar:
        parts = item.as_str().split()
        if len(parts) != 3:
            example = "'GET web /catalogue' (METHOD SERVICE PATH) or a mapping"
            raise item.error(f"expected a step such as {example}, got {item.describe()}")
        method, service, path = parts
        _check_step(item, method, service, path, services)
        return HttpStep(method=method.upper(), service=service, path=path)
    item.as_mapping().allow_keys(*_STEP_KEYS)
    return HttpStep(
        method=item.get("method", _read_method, "GET"),
        service=_known_service(item.require("service"), services),
        path=item.get("path", _read_path),
        json=item.get("json", _read_json, None),
        expect=item.get("expect", _read_expect, ()),
    )


def _check_step(item: Node, method: str, service: str, path: str, services: Mapping) -> None:
    """Validate the parts of a one-line step; errors point at the line."""
    if method.upper() not in HTTP_METHODS:
        raise item.error(f"unknown HTTP method {method!r}; use one of {', '.join(HTTP_METHODS)}")
    _known_service(item, services, service)
    if not path.startswith("/"):
        raise item.error(f"path {path!r} must start with '/'")
    item.as_template({"customer", "seq"})


def _read_method(node: Node) -> str:
    return node.as_choice([*HTTP_METHODS, *(m.lower() for m in HTTP_METHODS)]).upper()


def _read_path(node: Node) -> str:
    path = node.as_str()
    if not path.startswith("/"):
        raise node.error(f"path {path!r} must start with '/'")
    return node.as_template({"customer", "seq"})


def _read_json(node: Node) -> Any:
    value = node.as_value()
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise node.error(
            f"the body cannot be sent as JSON ({err}); quote dates and numbers"
        ) from err
    return value


def _read_expect(node: Node) -> tuple[int, ...]:
    items = node.as_list() if node.is_list else [node]
    return tuple(item.as_int(lo=100, hi=599) for item in items)


def _read_call(node: Node) -> str:
    text = node.as_str()
    module, sep, attribute = text.partition(":")
    parts = [*module.split("."), *attribute.split(".")]
    if not sep or not all(part.isidentifier() for part in parts):
        raise node.error(f"{text!r} is not 'module:attribute', e.g. 'shop.journeys:checkout'")
    return text


def _read_slo(node: Node) -> Slo:
    node.as_mapping().allow_keys(*_SLO_KEYS)
    success = node.get_float("success", 0.99, lo=0.0, hi=1.0)
    if success <= 0:
        raise node.require("success").error("success must be above 0 (a ratio in (0, 1])")
    return Slo(
        success=success,
        p95=node.get_duration("p95", None, positive=True),
        p99=node.get_duration("p99", None, positive=True),
    )


# -- failure modes and environments ------------------------------------------------------------


def _read_failure_modes(
    node: Node, fault_kinds: Collection[str] | None
) -> dict[int, tuple[str, ...]]:
    modes: dict[int, tuple[str, ...]] = {}
    for entry in node.entries():
        key = entry.key or ""
        digits = key.removeprefix("tier")
        tier = int(digits) if digits in ("1", "2", "3", "4") else None
        if tier is None:
            message = f"unknown tier {key!r}; use 1..4 or tier1..tier4"
            raise entry.error(message, at_key=True)
        if tier in modes:
            raise entry.error(f"tier {tier} is listed twice; keep one", at_key=True)
        kinds: list[str] = []
        for item in entry.as_list():
            kinds.append(_read_fault_kind(item, kinds, fault_kinds))
        modes[tier] = tuple(kinds)
    return modes


def _read_fault_kind(item: Node, seen: list[str], fault_kinds: Collection[str] | None) -> str:
    kind = item.as_str()
    if fault_kinds is not None and kind not in fault_kinds:
        listing = ", ".join(sorted(fault_kinds))
        hint = did_you_mean(kind, fault_kinds)
        raise item.error(f"unknown fault kind {kind!r}{hint}; valid kinds: {listing}")
    if kind in seen:
        raise item.error(f"{kind!r} is listed twice; keep one")
    return kind


def _read_environments(node: Node, base: Path) -> dict[str, Path]:
    environments: dict[str, Path] = {}
    for entry in node.as_mapping().entries():
        target = base / entry.as_str()
        if not target.is_file():
            raise entry.error(f"environment file {target} does not exist; fix the path")
        environments[entry.key or ""] = target
    return environments
