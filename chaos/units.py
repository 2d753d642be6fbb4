"""Durations and sizes as people write them ("800ms", "1.5s", "2m"), parsed in one place."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>us|µs|ms|s|m|h)?\s*$")
_SECONDS_PER_UNIT = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    None: 1.0,
}


def parse_duration(value: object) -> float:
    """Return seconds for "250ms", "1.5s", "2m", "1h", "100us" or a plain number of seconds.

    Raises ValueError with the accepted forms; callers wrap it with file/line/field.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '500ms', '2s' or '1m', got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"duration must be a finite number of seconds, got {value!r}")
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match["value"]) * _SECONDS_PER_UNIT[match["unit"]]
    raise ValueError(
        f"expected a duration such as '500ms', '2s', '1.5m' or a number of seconds, got {value!r}"
    )


def format_duration(seconds: float | None) -> str:
    """Short human form used in reports: 850ms, 2.30s, 1m05s."""
    if seconds is None:
        return "-"
    if seconds < 0.9995:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 59.995:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"
