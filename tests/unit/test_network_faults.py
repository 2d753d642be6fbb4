"""Network and outage faults planned against a tiny fake environment and a real ProxyServer."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from chaos.errors import FaultError, UnknownTarget
from faults import network, outage
from faults.base import Recipe, describe
from faults.proxy.client import ToxiproxyClient
from faults.proxy.server import ProxyServer


@dataclass(frozen=True)
class FakeEdge:
    name: str


@dataclass
class FakeCatalog:
    edges: tuple[str, ...]

    def edge(self, spec: str) -> FakeEdge:
        if spec not in self.edges:
            raise UnknownTarget(f"unknown edge {spec!r}; known: {', '.join(self.edges)}")
        return FakeEdge(spec)


@dataclass
class FakeEnv:
    client: ToxiproxyClient
    catalog: FakeCatalog = field(default_factory=lambda: FakeCatalog(("orders -> payments",)))

    def proxy(self) -> ToxiproxyClient:
        return self.client

    def proxy_name(self, edge: FakeEdge) -> str:
        return edge.name.replace(" -> ", "_to_")


@pytest.fixture
def env() -> Iterator[FakeEnv]:
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(8)
    with ProxyServer(port=0) as srv:
        client = ToxiproxyClient(srv.api_url)
        client.create_proxy("orders_to_payments", f"127.0.0.1:{upstream.getsockname()[1]}")
        yield FakeEnv(client)
    upstream.close()


EDGE = "orders -> payments"
ALL = [
    (network.latency(EDGE, 800, 100), "latency", {"latency": 800, "jitter": 100}),
    (network.bandwidth(EDGE, 64), "bandwidth", {"rate": 64}),
    (network.timeout(EDGE, 0), "timeout", {"timeout": 0}),
    (network.reset_peer(EDGE, 5), "reset_peer", {"timeout": 5}),
    (
        network.slicer(EDGE, 100, 10, 50),
        "slicer",
        {"average_size": 100, "size_variation": 10, "delay": 50},
    ),
    (network.limit_data(EDGE, 1000), "limit_data", {"bytes": 1000}),
    (network.slow_close(EDGE, 300, stream="upstream"), "slow_close", {"delay": 300}),
]


@pytest.mark.parametrize(("fault", "type_", "attributes"), ALL)
def test_apply_adds_the_toxic_and_revert_removes_it(env, fault, type_, attributes):
    injection = fault.plan(env)
    assert env.client.toxics("orders_to_payments") == []
    injection.apply()
    (toxic,) = env.client.toxics("orders_to_payments")
    assert toxic.type == type_ and dict(toxic.attributes) == attributes
    assert toxic.stream == fault.stream
    assert toxic.name.startswith(f"chaos-{fault.kind}-")
    assert injection.recipe == Recipe(
        "proxy.remove_toxic",
        {"api": env.client.url, "proxy": "orders_to_payments", "toxic": toxic.name},
    )
    injection.revert()
    injection.revert()  # idempotent
    assert env.client.toxics("orders_to_payments") == []


def test_recipe_reverts_from_a_fresh_process_view(env):
    injection = network.latency(EDGE, 10).plan(env)
    injection.apply()
    action = network.RECIPE_ACTIONS[injection.recipe.action]
    action(**Recipe.from_json(injection.recipe.to_json()).args)
    assert env.client.toxics("orders_to_payments") == []


def test_toxic_names_are_unique_per_injection(env):
    first, second = network.latency(EDGE, 10).plan(env), network.latency(EDGE, 10).plan(env)
    first.apply()
    second.apply()
    assert len(env.client.toxics("orders_to_payments")) == 2
    assert first.recipe.args["toxic"] != second.recipe.args["toxic"]


def test_params_and_describe_name_units():
    fault = network.latency(EDGE, 800, 100)
    assert fault.params() == {"latency_ms": 800, "jitter_ms": 100}
    assert describe(fault) == "latency orders -> payments (latency_ms=800, jitter_ms=100)"
    assert network.bandwidth(EDGE, 5, toxicity=0.5).params() == {"rate_kbps": 5, "toxicity": 0.5}


@pytest.mark.parametrize(
    ("fault", "field_name"),
    [
        (network.latency(EDGE, -1), "ms"),
        (network.latency(EDGE, 10, jitter=1.5), "jitter"),
        (network.bandwidth(EDGE, "fast"), "kbps"),  # type: ignore[arg-type]
        (network.slicer(EDGE, 0), "average_size"),
        (network.slicer(EDGE, 10, 10), "size_variation"),
        (network.limit_data(EDGE, -5), "bytes"),
        (network.latency(EDGE, 10, stream="sideways"), "stream"),
        (network.latency(EDGE, 10, toxicity=1.5), "toxicity"),
    ],
)
def test_bad_parameters_fail_before_injection(env, fault, field_name):
    with pytest.raises(FaultError, match=field_name):
        fault.plan(env)
    assert env.client.toxics("orders_to_payments") == []


def test_unknown_edge_is_refused(env):
    with pytest.raises(UnknownTarget, match="known: orders -> payments"):
        network.latency("orders -> nowhere", 10).plan(env)


def test_revert_after_the_proxy_died_counts_as_done(env):
    injection = network.latency(EDGE, 10).plan(env)
    injection.apply()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{dead.getsockname()[1]}"
    dead.close()
    network.remove_toxic_recipe(api=url, proxy="orders_to_payments", toxic="x")
    outage.enable_recipe(api=url, proxy="orders_to_payments")


def test_outage_disables_and_recipe_enables(env):
    injection = outage.outage(EDGE).plan(env)
    assert injection.recipe == Recipe(
        "proxy.enable", {"api": env.client.url, "proxy": "orders_to_payments"}
    )
    port = env.client.get_proxy("orders_to_payments").port
    injection.apply()
    assert env.client.get_proxy("orders_to_payments").enabled is False
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    outage.RECIPE_ACTIONS["proxy.enable"](**injection.recipe.args)
    injection.revert()
    assert env.client.get_proxy("orders_to_payments").enabled is True
    socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_apply_failure_is_a_fault_error(env):
    env.client.delete_proxy("orders_to_payments")
    with pytest.raises(FaultError, match="orders -> payments"):
        network.latency(EDGE, 10).plan(env).apply()
    outage.outage(EDGE).plan(env).revert()  # gone proxy: nothing to revert


def test_kinds_are_exported():
    assert {k.kind for k in network.KINDS} == {
        "latency",
        "bandwidth",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "slow_close",
    }
    assert (outage.Outage,) == outage.KINDS
