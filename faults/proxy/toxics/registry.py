"""The explicit list of toxic types, and parsing of toxic JSON into typed ToxicSpecs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faults.proxy.core import Stream, ToxicSpec
from faults.proxy.errors import BadRequest
from faults.proxy.toxics.bandwidth import Bandwidth
from faults.proxy.toxics.base import ToxicAttributes
from faults.proxy.toxics.latency import Latency
from faults.proxy.toxics.limit_data import LimitData
from faults.proxy.toxics.reset_peer import ResetPeer
from faults.proxy.toxics.slicer import Slicer
from faults.proxy.toxics.slow_close import SlowClose
from faults.proxy.toxics.timeout import Timeout

TOXIC_TYPES: dict[str, type[ToxicAttributes]] = {
    cls.type_name: cls
    for cls in (Latency, Bandwidth, SlowClose, Timeout, ResetPeer, Slicer, LimitData)
}


class UnknownToxicType(BadRequest):
    """A toxic `type` that is not in TOXIC_TYPES; the message lists the valid ones."""


def toxic_class(type_name: object) -> type[ToxicAttributes]:
    try:
        return TOXIC_TYPES[type_name]  # type: ignore[index]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(TOXIC_TYPES))
        raise UnknownToxicType(f"invalid toxic type {type_name!r}; valid types: {valid}") from None


def parse_toxic(body: object) -> ToxicSpec:
    """A new toxic from API JSON: defaults stream=downstream, toxicity=1, name=<type>_<stream>."""
    data = _object(body)
    cls = toxic_class(data.get("type"))
    stream = _stream(data.get("stream", "downstream"))
    name = data.get("name") or f"{cls.type_name}_{stream.value}"
    return ToxicSpec(
        name=_name(name),
        stream=stream,
        toxicity=_toxicity(data.get("toxicity", 1.0)),
        toxic=cls.from_attributes(data.get("attributes")),
    )


def update_toxic(current: ToxicSpec, body: object) -> ToxicSpec:
    """An updated toxic: given fields replace the current ones; name, type and stream stay."""
    data = _object(body)
    if "type" in data and data["type"] != current.type:
        raise BadRequest(f"cannot change the type of toxic {current.name!r} ({current.type})")
    cls = type(current.toxic)
    return ToxicSpec(
        name=current.name,
        stream=current.stream,
        toxicity=_toxicity(data.get("toxicity", current.toxicity)),
        toxic=cls.from_attributes(data.get("attributes", {}), base=current.toxic),  # type: ignore[arg-type]
    )


def _object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequest(f"bad request body: expected a JSON object, got {type(body).__name__}")
    return body


def _stream(value: object) -> Stream:
    try:
        return Stream(value)
    except ValueError:
        raise BadRequest(
            f"stream was invalid ({value!r}), can be either upstream or downstream"
        ) from None


def _toxicity(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise BadRequest(f"toxicity must be a number between 0 and 1, got {value!r}")
    return float(value)


def _name(value: object) -> str:
    if not isinstance(value, str) or not value or "/" in value or len(value) > 200:
        raise BadRequest(f"toxic name must be a non-empty string without '/', got {value!r}")
    return value
