"""Timeline plots of one experiment: success rate and latency p95 over time, the fault window shaded.

Why matplotlib: it is well kept, renders static PNGs with the Agg backend (no display, no browser,
no network), and a PNG works everywhere we show plots: as an Allure attachment and embedded
(base64) in the self-contained HTML report. Browser-side libraries (Plotly, Vega) would need their
JavaScript inlined in every report and a headless browser to make static images.

The samples themselves are not kept: `timeline()` buckets them into a small JSON structure stored
in the experiment's journal entry (`extra["timeline"]`), so plots can be redrawn from a journal
alone (`chaos report --html`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaos.impact import Sample, percentile
from chaos.units import format_duration

# Bucket widths (s) a timeline may use: the smallest that keeps at most MAX_BUCKETS buckets.
BUCKET_WIDTHS = (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
MAX_BUCKETS = 80
PALETTE = ("#3366cc", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
FAULT_SHADE = "#d64545"


@dataclass(frozen=True)
class Bucket:
    """The attempts started in [t, t + width): how many, how many succeeded, their p95 latency."""

    t: float  # seconds since the experiment started
    attempts: int
    ok: int
    p95: float | None

    @property
    def success(self) -> float:
        return self.ok / self.attempts if self.attempts else 0.0


@dataclass(frozen=True)
class Timeline:
    """Bucketed samples per journey plus the fault window; all times relative to the experiment."""

    width: float
    journeys: Mapping[str, tuple[Bucket, ...]]
    window: tuple[float, float] | None  # first fault applied → last fault reverted
    fault_end: float | None  # when TTR starts counting (revert, or an instant fault)

    def to_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "window": None if self.window is None else [round(x, 4) for x in self.window],
            "fault_end": None if self.fault_end is None else round(self.fault_end, 4),
            "journeys": {
                name: [[round(b.t, 4), b.attempts, b.ok, _round(b.p95)] for b in buckets]
                for name, buckets in self.journeys.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Timeline:
        """Inverse of to_json (the journal's `extra.timeline`)."""
        window = data.get("window")
        return cls(
            width=float(data["width"]),
            journeys={
                name: tuple(Bucket(float(t), int(n), int(ok), p95) for t, n, ok, p95 in rows)
                for name, rows in data["journeys"].items()
            },
            window=None if window is None else (float(window[0]), float(window[1])),
            fault_end=data.get("fault_end"),
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def bucket_width(span: float) -> float:
    """The smallest standard width that cuts `span` seconds into at most MAX_BUCKETS buckets."""
    return next((w for w in BUCKET_WIDTHS if span / w <= MAX_BUCKETS), BUCKET_WIDTHS[-1])


def timeline(
    samples: Mapping[str, Iterable[Sample]],
    *,
    t0: float,
    window: tuple[float, float] | None,
    fault_end: float | None,
) -> Timeline:
    """Bucket every journey's samples; `t0`, `window` and `fault_end` are on the samples' clock."""
    rel = {name: sorted(s.t - t0 for s in items) for name, items in samples.items()}
    by_name = {name: sorted(items, key=lambda s: s.t) for name, items in samples.items()}
    ends = [times[-1] for times in rel.values() if times]
    width = bucket_width(max(ends, default=0.0))
    journeys = {name: _buckets(items, t0, width) for name, items in by_name.items()}
    return Timeline(
        width=width,
        journeys=journeys,
        window=None if window is None else (window[0] - t0, window[1] - t0),
        fault_end=None if fault_end is None else fault_end - t0,
    )


def _buckets(samples: Sequence[Sample], t0: float, width: float) -> tuple[Bucket, ...]:
    groups: dict[int, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(math.floor(max(0.0, sample.t - t0) / width), []).append(sample)
    return tuple(
        Bucket(
            t=index * width,
            attempts=len(group),
            ok=sum(1 for s in group if s.ok),
            p95=percentile([s.latency for s in group], 95),
        )
        for index, group in sorted(groups.items())
    )


@dataclass(frozen=True)
class Marker:
    """A vertical line on the plot: TTD or TTR of one journey."""

    at: float
    label: str


def markers(entry: Mapping[str, Any], tl: Timeline) -> list[Marker]:
    """TTD (from the fault start) and TTR (from the fault end) of each journey in a journal entry."""
    found: list[Marker] = []
    for name, imp in (entry.get("impact") or {}).items():
        ttd, ttr = imp.get("ttd"), imp.get("ttr")
        if ttd is not None and tl.window is not None:
            found.append(Marker(tl.window[0] + ttd, f"TTD {name} {format_duration(ttd)}"))
        if ttr is not None and tl.fault_end is not None:
            found.append(Marker(tl.fault_end + ttr, f"TTR {name} {format_duration(ttr)}"))
    return found


def timeline_png(entry: Mapping[str, Any], *, width_px: int = 880, height_px: int = 440) -> bytes:
    """The timeline plot of one journal entry as PNG bytes (an empty note without a timeline)."""
    from matplotlib.figure import Figure  # imported late: only reports draw

    raw = (entry.get("extra") or {}).get("timeline")
    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, layout="constrained")
    if not raw or not raw.get("journeys"):
        fig.text(0.5, 0.5, "no samples recorded", ha="center", va="center", color="#666")
        return _png(fig)
    tl = Timeline.from_json(raw)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1))
    for index, (name, buckets) in enumerate(sorted(tl.journeys.items())):
        colour = PALETTE[index % len(PALETTE)]
        xs = [b.t + tl.width / 2 for b in buckets]
        top.plot(xs, [100 * b.success for b in buckets], color=colour, marker=".", label=name)
        bottom.plot(
            xs,
            [1000 * b.p95 if b.p95 is not None else math.nan for b in buckets],
            color=colour,
            marker=".",
            label=name,
        )
    _decorate(top, bottom, tl, markers(entry, tl))
    if entry.get("outcome") == "not-recovered":
        top.text(
            0.99,
            0.5,
            "not recovered",
            transform=top.transAxes,
            ha="right",
            fontsize=9,
            color=FAULT_SHADE,
            fontweight="bold",
        )
    title = f"{entry.get('failure_mode') or entry.get('name', '')} — {entry.get('outcome', '?')}"
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def _decorate(top: Any, bottom: Any, tl: Timeline, marks: Sequence[Marker]) -> None:
    top.set_ylabel("success %")
    top.set_ylim(-5, 105)
    top.set_yticks([0, 25, 50, 75, 100])
    bottom.set_ylabel("latency p95 (ms)")
    bottom.set_xlabel(f"seconds since the experiment started (buckets of {tl.width:g}s)")
    bottom.set_ylim(bottom=0)
    for axes in (top, bottom):
        axes.grid(True, color="#e5e5e5", linewidth=0.6)
        for side in ("top", "right"):
            axes.spines[side].set_visible(False)
        if tl.window is not None:
            axes.axvspan(*tl.window, color=FAULT_SHADE, alpha=0.12, linewidth=0)
        for mark in marks:
            style = ":" if mark.label.startswith("TTD") else "--"
            axes.axvline(mark.at, color="#444", linestyle=style, linewidth=1)
    if tl.window is not None:
        top.text(tl.window[0], 106, "fault window", color=FAULT_SHADE, fontsize=8, va="bottom")
    for index, mark in enumerate(marks):  # staggered so TTD and TTR labels never overlap
        top.annotate(
            mark.label,
            xy=(mark.at, 0.93 - 0.16 * (index % 4)),
            xycoords=("data", "axes fraction"),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=7,
            va="center",
            color="#333",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#bbb", "lw": 0.5},
        )
    top.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=4, fontsize=8, frameon=False)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
