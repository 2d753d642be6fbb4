"""Shared attribute parsing for toxics: every attribute is a non-negative integer with a unit."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from faults.proxy.errors import BadRequest

MAX_ATTRIBUTE = 2**53  # beyond this JSON numbers lose precision; no sane toxic needs more


def attribute(unit: str, default: int = 0) -> Any:
    """A toxic field: JSON attribute of the same name, integer, in `unit`."""
    return dataclasses.field(default=default, metadata={"unit": unit})


@dataclasses.dataclass(frozen=True)
class ToxicAttributes:
    """Base of every toxic: fields are the JSON attributes (unset ones keep their value)."""

    type_name: ClassVar[str] = ""

    @classmethod
    def from_attributes(cls, attrs: object, base: Self | None = None) -> Self:
        """Validate `attrs` (a JSON object); missing fields come from `base` or default to 0."""
        if attrs is None:
            attrs = {}
        if not isinstance(attrs, Mapping):
            raise BadRequest(f"{cls.type_name}: attributes must be a JSON object, got {attrs!r}")
        values: dict[str, int] = {}
        for f in dataclasses.fields(cls):
            fallback = getattr(base, f.name) if base is not None else f.default
            values[f.name] = _integer(cls.type_name, f.name, f.metadata["unit"], attrs, fallback)
        made = cls(**values)
        made.check()
        return made

    def check(self) -> None:
        """Cross-field validation; override where needed."""

    def attributes(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _integer(toxic: str, name: str, unit: str, attrs: Mapping[str, Any], fallback: int) -> int:
    value = attrs.get(name, fallback)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(
            f"{toxic}: attribute {name!r} must be an integer number of {unit}, got {value!r}"
        )
    if not 0 <= value <= MAX_ATTRIBUTE:
        raise BadRequest(
            f"{toxic}: attribute {name!r} must be between 0 and {MAX_ATTRIBUTE} {unit}, got {value}"
        )
    return value
