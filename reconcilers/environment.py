"""Converge an environment to its declared state between experiments, and say what had to be repaired.

Every repair listed is evidence that the system did not heal itself: a paused container nobody
resumed, a crashed service without a restart policy, a toxic left on an edge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from chaos.errors import EnvironmentFailure, FaultError
from faults.container import network_connect_recipe
from faults.proxy.client import ProxyInfo, ToxiproxyClient

if TYPE_CHECKING:
    from chaos.environments.base import ServiceLifecycle
    from chaos.environments.compose import ComposeEnvironment


def reconcile_proxies(client: ToxiproxyClient, declared: Mapping[str, ProxyInfo]) -> list[str]:
    """Every declared proxy present, enabled and without toxics; lists what it changed."""
    live = client.proxies()
    repairs: list[str] = []
    for name, wanted in declared.items():
        current = live.get(name)
        if current is None:
            client.create_proxy(name, wanted.upstream, listen=wanted.listen)
            repairs.append(f"recreated missing proxy {name} on {wanted.listen}")
            continue
        for toxic in current.toxics:
            client.remove_toxic(name, toxic.name)
            repairs.append(f"removed toxic {toxic.name} ({toxic.type}) from proxy {name}")
        if not current.enabled:
            client.update_proxy(name, enabled=True)
            repairs.append(f"re-enabled proxy {name}")
    return repairs


def ready_or_restarted(
    service: str, wait_ready: Callable[[str], None], lifecycle: ServiceLifecycle
) -> list[str]:
    """Wait until the service is ready; one restart if it runs but never gets there."""
    try:
        wait_ready(service)
    except EnvironmentFailure:
        lifecycle.restart(service)
        wait_ready(service)
        return [f"restarted service {service}: it was running but not ready"]
    return []


def reconcile_compose(env: ComposeEnvironment) -> list[str]:
    """Sidecar first (it carries the edges), then each service in restore order."""
    sidecar, *services = env.service_order()
    repairs = _reconcile_container(env, sidecar)
    repairs += reconcile_proxies(env.proxy(), env.declared_proxies)
    for name in services:
        repairs += _reconcile_container(env, name)
    return repairs


def _reconcile_container(env: ComposeEnvironment, service: str) -> list[str]:
    """Present, running, unpaused, on its networks, then ready — or restarted once."""
    repairs: list[str] = []
    try:
        container = env.lifecycle.container(service)
    except FaultError:
        env.cli.run("up", "-d", "--no-deps", service)
        repairs.append(f"recreated the missing container of service {service}")
        container = env.lifecycle.container(service)
    state = container.attrs["State"]
    if state.get("Paused"):
        env.lifecycle.resume(service)
        repairs.append(f"resumed paused service {service}")
    elif not state.get("Running") and not state.get("Restarting"):
        env.lifecycle.start(service)
        code = state.get("ExitCode")
        repairs.append(
            f"started service {service} (it was {state.get('Status')}, exit code {code})"
        )
    repairs += _reconnect(env, service)
    health = (state.get("Health") or {}).get("Status")
    if state.get("Running") and not state.get("Paused") and health == "unhealthy":
        # Docker already judged it (its retries ran out): restart now instead of waiting it out.
        # (Not after a resume: a paused container's health is stale, it is judged afresh below.)
        env.lifecycle.restart(service)
        repairs.append(f"restarted service {service}: Docker reported it unhealthy")
    return repairs + ready_or_restarted(service, env.wait_ready, env.lifecycle)


def _reconnect(env: ComposeEnvironment, service: str) -> list[str]:
    """Reattach the container to the networks it had at start, with the same aliases."""
    declared = env.attachments.get(service, [])
    present = {a.network for a in env.lifecycle.attachments(service)}
    missing = [a for a in declared if a.network not in present]
    if not missing:
        return []
    container = env.lifecycle.container(service)
    network_connect_recipe(
        container=container.id,
        run_id=env.run_id,
        service=service,
        networks=[a.to_json() for a in missing],
    )
    return [f"reconnected service {service} to network {a.name}" for a in missing]
