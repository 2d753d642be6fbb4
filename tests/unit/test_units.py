"""Durations are parsed and printed the way people write them, in one place."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given

from chaos.units import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1.5m", 90.0),
        ("1h", 3600.0),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        (".5s", 0.5),
        ("3", 3.0),
        (" 2 s ", 2.0),
        ("0", 0.0),
        (7, 7.0),
        (0.2, 0.2),
    ],
)
def test_parse_duration_accepts_common_forms(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["5 parsecs", "", "-1s", "1e3", "1.s", "s", "2 hours", "1m30s", None, [1], True, -1]
)
def test_parse_duration_rejects_everything_else_with_the_accepted_forms(value: object) -> None:
    with pytest.raises(ValueError, match="duration") as info:
        parse_duration(value)
    if isinstance(value, str):
        assert repr(value) in str(info.value)


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["us", "ms", "s", "m", "h"]))
def test_parse_duration_scales_by_unit(amount: int, unit: str) -> None:
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    assert parse_duration(f"{amount}{unit}") == pytest.approx(amount * scale)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.0, "0ms"),
        (0.85, "850ms"),
        (2.3, "2.30s"),
        (65.0, "1m05s"),
        (600.0, "10m00s"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_never_prints_sixty_seconds() -> None:
    assert format_duration(119.6) == "2m00s"
    assert format_duration(59.999) == "1m00s"
    assert format_duration(0.9999) == "1.00s"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_parse_duration_refuses_non_finite_numbers(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_duration(value)
