"""Network faults on catalog edges: one Toxiproxy toxic each, on the proxy that carries the edge."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from chaos.errors import FaultError
from faults.base import Injection, Recipe
from faults.edges import EdgeProxy, admin, unless_gone

if TYPE_CHECKING:
    from chaos.environments.base import Environment

STREAMS = ("upstream", "downstream")


@dataclass(frozen=True)
class Param:
    """One fault parameter: dataclass field, its public key (with unit) and the toxic attribute."""

    field: str
    key: str
    attribute: str
    minimum: int = 0


@dataclass(frozen=True)
class ToxicFault:
    """Shared shape of every toxic fault: validate, plan, apply = add toxic, revert = remove it."""

    kind: ClassVar[str] = ""
    toxic_type: ClassVar[str] = ""
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    target: str
    stream: str = field(default="downstream", kw_only=True)
    toxicity: float = field(default=1.0, kw_only=True)

    def attributes(self) -> dict[str, int]:
        return {p.attribute: int(getattr(self, p.field)) for p in self.PARAMS}

    def params(self) -> dict[str, Any]:
        values: dict[str, Any] = {p.key: getattr(self, p.field) for p in self.PARAMS}
        if self.stream != "downstream":
            values["stream"] = self.stream
        if self.toxicity != 1.0:
            values["toxicity"] = self.toxicity
        return values

    def validate(self) -> None:
        """Raise FaultError naming the field, before anything is injected."""
        for p in self.PARAMS:
            value = getattr(self, p.field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultError(
                    f"{self.kind} {self.target}: {p.field} must be a number, got {value!r}"
                )
            if value < p.minimum or (isinstance(value, float) and not value.is_integer()):
                raise FaultError(
                    f"{self.kind} {self.target}: {p.field} must be a whole number >= {p.minimum}, "
                    f"got {value!r}"
                )
        if self.stream not in STREAMS:
            raise FaultError(
                f"{self.kind} {self.target}: stream must be 'upstream' or 'downstream', "
                f"got {self.stream!r}"
            )
        if isinstance(self.toxicity, bool) or not 0.0 <= self.toxicity <= 1.0:
            raise FaultError(
                f"{self.kind} {self.target}: toxicity must be between 0 and 1, got {self.toxicity!r}"
            )

    def plan(self, env: Environment) -> Injection:
        self.validate()
        edge = EdgeProxy.of(env, self.target)
        toxic = f"chaos-{self.kind}-{secrets.token_hex(4)}"
        recipe = Recipe(
            "proxy.remove_toxic", {"api": edge.client.url, "proxy": edge.name, "toxic": toxic}
        )
        add = functools.partial(
            edge.client.add_toxic,
            edge.name,
            self.toxic_type,
            attributes=self.attributes(),
            name=toxic,
            stream=self.stream,
            toxicity=self.toxicity,
        )
        return Injection(
            description=f"{self.kind} on {edge.edge.name} (proxy {edge.name}, toxic {toxic})",
            recipe=recipe,
            apply=lambda: edge.inject(f"inject {self.kind}", add),
            revert=lambda: remove_toxic_recipe(**recipe.args),
        )


def remove_toxic_recipe(*, api: str, proxy: str, toxic: str) -> None:
    """Recipe action: remove a toxic; idempotent."""
    unless_gone(lambda: admin(api).remove_toxic(proxy, toxic))


@dataclass(frozen=True)
class Latency(ToxicFault):
    kind = "latency"
    toxic_type = "latency"
    PARAMS = (Param("ms", "latency_ms", "latency"), Param("jitter", "jitter_ms", "jitter"))
    ms: float = 0
    jitter: float = 0


@dataclass(frozen=True)
class Bandwidth(ToxicFault):
    kind = "bandwidth"
    toxic_type = "bandwidth"
    PARAMS = (Param("kbps", "rate_kbps", "rate"),)
    kbps: float = 0


@dataclass(frozen=True)
class Timeout(ToxicFault):
    kind = "timeout"
    toxic_type = "timeout"
    PARAMS = (Param("ms", "timeout_ms", "timeout"),)
    ms: float = 0


@dataclass(frozen=True)
class ResetPeer(ToxicFault):
    kind = "reset_peer"
    toxic_type = "reset_peer"
    PARAMS = (Param("ms", "timeout_ms", "timeout"),)
    ms: float = 0


@dataclass(frozen=True)
class Slicer(ToxicFault):
    kind = "slicer"
    toxic_type = "slicer"
    PARAMS = (
        Param("average_size", "average_size_bytes", "average_size", minimum=1),
        Param("size_variation", "size_variation_bytes", "size_variation"),
        Param("delay_us", "delay_us", "delay"),
    )
    average_size: int = 1
    size_variation: int = 0
    delay_us: int = 0

    def validate(self) -> None:
        super().validate()
        if self.size_variation >= self.average_size:
            raise FaultError(
                f"slicer {self.target}: size_variation ({self.size_variation}) must be smaller "
                f"than average_size ({self.average_size})"
            )


@dataclass(frozen=True)
class LimitData(ToxicFault):
    kind = "limit_data"
    toxic_type = "limit_data"
    PARAMS = (Param("bytes", "bytes", "bytes"),)
    bytes: int = 0


@dataclass(frozen=True)
class SlowClose(ToxicFault):
    kind = "slow_close"
    toxic_type = "slow_close"
    PARAMS = (Param("ms", "delay_ms", "delay"),)
    ms: float = 0


def latency(
    edge: str, ms: float, jitter: float = 0, *, stream: str = "downstream", toxicity: float = 1.0
) -> Latency:
    """Delay data on `edge` by `ms` ± `jitter` milliseconds."""
    return Latency(edge, ms=ms, jitter=jitter, stream=stream, toxicity=toxicity)


def bandwidth(
    edge: str, kbps: float, *, stream: str = "downstream", toxicity: float = 1.0
) -> Bandwidth:
    """Limit `edge` to `kbps` KB/s (0 stops data until reverted)."""
    return Bandwidth(edge, kbps=kbps, stream=stream, toxicity=toxicity)


def timeout(edge: str, ms: float, *, stream: str = "downstream", toxicity: float = 1.0) -> Timeout:
    """Swallow data on `edge`; close connections after `ms` of silence (0 = never)."""
    return Timeout(edge, ms=ms, stream=stream, toxicity=toxicity)


def reset_peer(
    edge: str, ms: float = 0, *, stream: str = "downstream", toxicity: float = 1.0
) -> ResetPeer:
    """Reset (TCP RST) connections on `edge` `ms` after data arrives."""
    return ResetPeer(edge, ms=ms, stream=stream, toxicity=toxicity)


def slicer(
    edge: str,
    average_size: int,
    size_variation: int = 0,
    delay_us: int = 0,
    *,
    stream: str = "downstream",
    toxicity: float = 1.0,
) -> Slicer:
    """Cut data on `edge` into small writes of about `average_size` bytes, `delay_us` apart."""
    return Slicer(
        edge,
        average_size=average_size,
        size_variation=size_variation,
        delay_us=delay_us,
        stream=stream,
        toxicity=toxicity,
    )


def limit_data(
    edge: str, bytes: int, *, stream: str = "downstream", toxicity: float = 1.0
) -> LimitData:
    """Close connections on `edge` after `bytes` bytes."""
    return LimitData(edge, bytes=bytes, stream=stream, toxicity=toxicity)


def slow_close(
    edge: str, ms: float, *, stream: str = "downstream", toxicity: float = 1.0
) -> SlowClose:
    """Delay the close of connections on `edge` by `ms`."""
    return SlowClose(edge, ms=ms, stream=stream, toxicity=toxicity)


KINDS: tuple[type, ...] = (Latency, Bandwidth, Timeout, ResetPeer, Slicer, LimitData, SlowClose)
RECIPE_ACTIONS: dict[str, Callable[..., None]] = {"proxy.remove_toxic": remove_toxic_recipe}
