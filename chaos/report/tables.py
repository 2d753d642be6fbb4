"""Plain-text tables of impact, shared by failure messages and the terminal summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chaos.impact import Impact
from chaos.units import format_duration


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, header underlined."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, ["-" * w for w in widths], *rows)
    ]
    return "\n".join(lines)


def impact_row(journey: str, imp: Impact) -> list[str]:
    return [
        journey,
        str(imp.samples),
        f"{imp.error_rate:.1%}",
        format_duration(imp.p50),
        format_duration(imp.p95),
        format_duration(imp.p99),
        f"{imp.customers_affected}/{imp.customers}",
        format_duration(imp.ttd),
        format_duration(imp.ttr),
        "yes" if imp.slo_held else "NO",
    ]


IMPACT_HEADER = [
    "journey",
    "samples",
    "errors",
    "p50",
    "p95",
    "p99",
    "affected",
    "TTD",
    "TTR",
    "SLO held",
]


def impact_table(impacts: Mapping[str, Impact]) -> str:
    """The customer-visible impact of one fault window, one row per journey."""
    if not impacts:
        return "(no samples: the fault window was never opened)"
    return render_table(IMPACT_HEADER, [impact_row(name, imp) for name, imp in impacts.items()])
