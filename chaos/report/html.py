"""The self-contained HTML failure-mode matrix: one file, no network, plots embedded as base64 PNG.

Rendered from a journal (a dict as written by chaos.report.journal), so the session end and
`chaos report --html` draw the same page: services (tier, then restore order) by fault kinds, each
cell coloured by outcome with error rate, TTR and a link to its timeline; required-but-missing
failure modes as visible gaps; customer impact per journey; the previous run compared.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from chaos.errors import ChaosError
from chaos.impact import Outcome
from chaos.report.baselines import (
    DEFAULT_THRESHOLD,
    Figures,
    Regression,
    compare,
    format_figure,
    previous_run,
    run_baseline,
)
from chaos.report.plots import timeline_png
from chaos.units import format_duration

REPORT_NAME = "report.html"
# Worst first: what a cell shows when several experiments hit the same service and fault kind.
SEVERITY = {
    Outcome.NOT_RECOVERED.value: 3,
    Outcome.BROKEN.value: 2,
    Outcome.DEGRADED.value: 1,
    Outcome.TOLERATED.value: 0,
}
UNKNOWN_ORDER = 10**6

CSS = """
:root { --ok:#1f8f4e; --ok-bg:#e4f5ea; --deg:#a86500; --deg-bg:#fdf1d8; --bad:#c02c2c;
  --bad-bg:#fde6e6; --brk:#6742b8; --brk-bg:#eee8fb; --ink:#1d2330; --mute:#667085;
  --line:#e4e7ec; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--ink); background:#f6f7f9; }
header { background:#1d2330; color:#fff; padding:20px 32px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .meta { color:#c3c8d2; font-size:13px; }
main { padding:20px 32px 40px; max-width:1400px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 22px;
  margin:0 0 20px; }
h2 { margin:0 0 12px; font-size:17px; }
h3 { margin:0 0 6px; font-size:15px; }
.pills { display:flex; flex-wrap:wrap; gap:8px; margin-top:12px; }
.pill { border-radius:999px; padding:3px 12px; font-weight:600; font-size:13px; }
table { border-collapse:collapse; width:100%; }
th, td { padding:7px 10px; border-bottom:1px solid var(--line); text-align:left;
  vertical-align:top; }
th { font-size:12px; text-transform:uppercase; letter-spacing:.03em; color:var(--mute); }
th[scope=row] { font-size:14px; text-transform:none; letter-spacing:0; color:var(--ink); }
table.matrix { width:auto; }
table.matrix th[scope=row] { min-width:200px; padding-right:28px; }
table.matrix td.cell { width:170px; min-width:150px; border:3px solid #fff; border-radius:8px; }
td.cell a { color:inherit; text-decoration:none; display:block; }
td.cell .o { font-weight:700; }
td.cell .n { font-size:12px; }
.tolerated { background:var(--ok-bg); color:var(--ok); }
.degraded { background:var(--deg-bg); color:var(--deg); }
.not-recovered { background:var(--bad-bg); color:var(--bad); }
.broken { background:var(--brk-bg); color:var(--brk); }
.gap { background:repeating-linear-gradient(135deg,#fff 0 6px,#f1f2f4 6px 12px);
  color:var(--mute); outline:2px dashed #c9ced6; outline-offset:-4px; }
.none { color:#c3c8d2; text-align:center; }
.tier { display:inline-block; font-size:11px; font-weight:700; border-radius:4px;
  padding:1px 6px; margin-left:6px; background:#eef1f5; color:var(--mute); }
.missing-note { font-size:12px; font-weight:600; }
.num { text-align:right; font-variant-numeric:tabular-nums; }
.worse { color:var(--bad); font-weight:700; }
.better { color:var(--ok); }
.exp { border-top:1px solid var(--line); padding-top:16px; margin-top:16px; }
.exp:first-of-type { border-top:0; margin-top:0; padding-top:0; }
.exp img { max-width:100%; border:1px solid var(--line); border-radius:6px; margin-top:8px; }
.phases { display:flex; flex-wrap:wrap; gap:6px; margin:6px 0; }
.phase { background:#eef1f5; border-radius:6px; padding:2px 8px; font-size:12px;
  font-family:ui-monospace,Menlo,monospace; }
.error { white-space:pre-wrap; font-family:ui-monospace,Menlo,monospace; font-size:12px;
  background:#fafafa; border-left:3px solid var(--bad); padding:6px 10px; }
.mute { color:var(--mute); }
"""


@dataclass
class Cell:
    """One (service, fault kind): the experiments that hit it and the required modes left out."""

    entries: list[tuple[int, Mapping[str, Any]]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # targets required but not exercised

    @property
    def outcome(self) -> str | None:
        outcomes = [entry["outcome"] for _, entry in self.entries]
        return max(outcomes, key=lambda o: SEVERITY.get(o, 0)) if outcomes else None


@dataclass
class Row:
    """One service of the matrix."""

    service: str
    tier: int | None = None
    restore_order: int | None = None
    cells: dict[str, Cell] = field(default_factory=dict)

    def cell(self, kind: str) -> Cell:
        return self.cells.setdefault(kind, Cell())

    def sort_key(self) -> tuple[int, int, str]:
        return (
            self.tier or UNKNOWN_ORDER,
            self.restore_order or UNKNOWN_ORDER,
            self.service,
        )


def matrix(journal: Mapping[str, Any]) -> tuple[list[Row], list[str]]:
    """Rows (tier, then restore order) and columns (fault kinds) of the failure-mode matrix."""
    rows: dict[str, Row] = {}

    def row(name: str) -> Row:
        return rows.setdefault(name, Row(name))

    for index, entry in enumerate(journal["experiments"]):
        known = (entry.get("extra") or {}).get("services") or {}
        for service in entry["services"]:
            facts = known.get(service) or {}
            row(service).tier = facts.get("tier", row(service).tier)
            row(service).restore_order = facts.get("restore_order", row(service).restore_order)
            for kind in dict.fromkeys(fault["kind"] for fault in entry["faults"]):
                row(service).cell(kind).entries.append((index, entry))
    for mode in (journal.get("coverage") or {}).get("missing") or []:
        target = row(mode["service"])
        target.tier = target.tier or mode.get("tier")
        target.cell(mode["kind"]).missing.append(mode["target"])
    kinds = sorted({kind for r in rows.values() for kind in r.cells})
    return sorted(rows.values(), key=Row.sort_key), kinds


def render(
    journal: Mapping[str, Any],
    *,
    previous: Mapping[str, Any] | None = None,
    previous_note: str = "",
    threshold: float = DEFAULT_THRESHOLD,
) -> str:
    """The whole page as one string."""
    rows, kinds = matrix(journal)
    regressions = (
        None
        if previous is None
        else compare(run_baseline(previous), run_baseline(journal), threshold=threshold)
    )
    body = "\n".join(
        [
            _header(journal),
            "<main>",
            _matrix_section(journal, rows, kinds),
            _journeys_section(journal, previous),
            _comparison_section(journal, previous, previous_note, regressions, threshold),
            _experiments_section(journal),
            "</main>",
        ]
    )
    title = f"pytest-chaos run {journal['run_id']}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _header(journal: Mapping[str, Any]) -> str:
    entries = journal["experiments"]
    counts = {o.value: sum(1 for e in entries if e["outcome"] == o.value) for o in Outcome}
    pills = "".join(
        f'<span class="pill {o}">{n} {escape(o)}</span>' for o, n in counts.items() if n
    )
    cov = journal.get("coverage")
    if cov:
        covered = len(cov.get("covered") or [])
        pills += (
            f'<span class="pill gap">coverage {covered}/{cov.get("required", 0)} required modes '
            f"({cov.get('ratio', 0):.0%})</span>"
        )
    env = journal.get("environment") or {}
    started = journal.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    meta = (
        f"run {escape(str(journal['run_id']))} · {when} · seed {escape(str(journal.get('seed')))}"
        f" · env {escape(str(env.get('kind', '?')))} · catalog "
        f"{escape(str(journal.get('catalog') or '-'))}"
    )
    return (
        f"<header><h1>Failure modes and customer impact</h1>"
        f'<div class="meta">{meta}</div><div class="pills">{pills}</div></header>'
    )


def _matrix_section(journal: Mapping[str, Any], rows: Sequence[Row], kinds: Sequence[str]) -> str:
    if not rows:
        return (
            "<section><h2>Failure-mode matrix</h2><p>No experiment injected a fault.</p></section>"
        )
    head = "".join(f"<th>{escape(kind)}</th>" for kind in kinds)
    lines = []
    for r in rows:
        tier = f'<span class="tier">tier {r.tier}</span>' if r.tier else ""
        cells = "".join(_cell_html(r.service, kind, r.cells.get(kind)) for kind in kinds)
        lines.append(f"<tr><th scope=row>{escape(r.service)}{tier}</th>{cells}</tr>")
    unrun = [(i, e) for i, e in enumerate(journal["experiments"]) if not e["faults"]]
    note = ""
    if unrun:
        links = ", ".join(f'<a href="#exp-{i}">{escape(e["name"])}</a>' for i, e in unrun)
        note = f'<p class="mute">Broke before injecting any fault: {links}</p>'
    return (
        "<section><h2>Failure-mode matrix</h2>"
        '<p class="mute">Services by tier, then restore order. Hatched cells are failure modes '
        "the catalog requires that no experiment exercised.</p>"
        f'<table class="matrix"><thead><tr><th>service</th>{head}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table>{note}</section>"
    )


def _cell_html(service: str, kind: str, cell: Cell | None) -> str:
    ident = f'data-service="{escape(service)}" data-kind="{escape(kind)}"'
    if cell is None:
        return f'<td class="cell none" {ident}>&ndash;</td>'
    missing = ""
    if cell.missing:
        targets = ", ".join(escape(t) for t in cell.missing)
        missing = f'<div class="missing-note" title="{targets}">required, missing: {targets}</div>'
    outcome = cell.outcome
    if outcome is None:
        return f'<td class="cell gap" {ident} data-outcome="missing">{missing}</td>'
    worst_rate = max(_worst_error_rate(e) for _, e in cell.entries)
    ttrs = [e["ttr"] for _, e in cell.entries if e["ttr"] is not None]
    ttr = format_duration(max(ttrs)) if ttrs else "never" if outcome == "not-recovered" else "-"
    first = cell.entries[0][0]
    count = f" · {len(cell.entries)} experiments" if len(cell.entries) > 1 else ""
    return (
        f'<td class="cell {outcome}" {ident} data-outcome="{outcome}">'
        f'<a href="#exp-{first}"><div class="o">{escape(outcome)}</div>'
        f'<div class="n">errors {worst_rate:.1%} · TTR {escape(ttr)}{count}</div></a>'
        f"{missing}</td>"
    )


def _worst_error_rate(entry: Mapping[str, Any]) -> float:
    return max((imp["error_rate"] for imp in entry["impact"].values()), default=0.0)


def _journeys_section(journal: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str:
    per: dict[str, list[tuple[int, Mapping[str, Any], Mapping[str, Any]]]] = {}
    for index, entry in enumerate(journal["experiments"]):
        for journey, imp in entry["impact"].items():
            per.setdefault(journey, []).append((index, entry, imp))
    base = run_baseline(journal)
    before = run_baseline(previous) if previous is not None else {}
    rows = []
    for journey in sorted(set(per) | set(base)):
        hits = per.get(journey, [])
        broke = sum(1 for _, _, imp in hits if not imp["slo_held"])
        worst = max(hits, key=lambda h: h[2]["error_rate"], default=None)
        worst_html = "-"
        if worst is not None:
            index, entry, imp = worst
            worst_html = (
                f'{imp["error_rate"]:.1%} <a href="#exp-{index}">'
                f"{escape(entry['failure_mode'] or entry['name'])}</a>"
            )
        affected = max((imp.get("customers_affected", 0) for _, _, imp in hits), default=0)
        customers = max((imp.get("customers", 0) for _, _, imp in hits), default=0)
        p95s = [imp.get("p95") for _, _, imp in hits if imp.get("p95") is not None]
        rows.append(
            f"<tr><th scope=row>{escape(journey)}</th>"
            f'<td class="num">{broke}/{len(hits)}</td><td>{worst_html}</td>'
            f'<td class="num">{format_duration(max(p95s)) if p95s else "-"}</td>'
            f'<td class="num">{affected}/{customers}</td>'
            f"{_baseline_cells(base.get(journey), before.get(journey))}</tr>"
        )
    return (
        "<section><h2>Customer impact per journey</h2><table><thead><tr><th>journey</th>"
        '<th class="num">SLO broken</th><th>worst error rate</th><th class="num">worst p95</th>'
        '<th class="num">max affected</th><th class="num">baseline p50</th>'
        '<th class="num">baseline p95</th><th class="num">baseline p99</th>'
        '<th class="num">baseline errors</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _baseline_cells(now: Figures | None, before: Figures | None) -> str:
    cells = []
    for metric in ("p50", "p95", "p99", "error_rate"):
        value = None if now is None else now.get(metric)
        old = None if before is None else before.get(metric)
        text = format_figure(metric, value)
        if value is not None and old is not None and old != value:
            arrow = "▲" if value > old else "▼"
            css = "worse" if value > old else "better"
            text += f' <span class="{css}" title="previous run: {format_figure(metric, old)}">{arrow}</span>'
        cells.append(f'<td class="num">{text}</td>')
    return "".join(cells)


def _comparison_section(
    journal: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    note: str,
    regressions: Sequence[Regression] | None,
    threshold: float,
) -> str:
    if previous is None:
        text = escape(note or "No earlier run in this results directory.")
        return f"<section><h2>Compared with the previous run</h2><p class=mute>{text}</p></section>"
    found = regressions or []
    items = "".join(f'<li class="worse">{escape(r.describe())}</li>' for r in found)
    flags = (
        f"<ul>{items}</ul>"
        if found
        else f"<p class=better>No steady-state figure worse by more than {threshold:.0%}.</p>"
    )
    old = {e["name"]: e for e in previous["experiments"]}
    rows = []
    for index, entry in enumerate(journal["experiments"]):
        was = old.get(entry["name"])
        before = "new" if was is None else was["outcome"]
        css = _change_class(before, entry["outcome"])
        rows.append(
            f'<tr><td><a href="#exp-{index}">{escape(entry["name"])}</a></td>'
            f'<td><span class="pill {escape(before)}">{escape(before)}</span></td>'
            f'<td><span class="pill {entry["outcome"]}">{entry["outcome"]}</span></td>'
            f'<td class="{css}">{"new" if was is None else _change_word(css)}</td></tr>'
        )
    return (
        f"<section><h2>Compared with the previous run "
        f"({escape(str(previous['run_id']))})</h2>"
        f"<h3>Steady-state baselines (threshold {threshold:.0%})</h3>{flags}"
        "<h3>Outcomes</h3><table><thead><tr><th>experiment</th><th>before</th><th>now</th>"
        f"<th>change</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _change_class(before: str, now: str) -> str:
    if before not in SEVERITY or before == now:
        return "mute"
    return "worse" if SEVERITY[now] > SEVERITY[before] else "better"


def _change_word(css: str) -> str:
    return {"worse": "worse", "better": "better"}.get(css, "same")


def _experiments_section(journal: Mapping[str, Any]) -> str:
    parts = [_experiment_html(i, e) for i, e in enumerate(journal["experiments"])]
    return f"<section><h2>Experiments</h2>{''.join(parts)}</section>"


def _experiment_html(index: int, entry: Mapping[str, Any]) -> str:
    outcome = entry["outcome"]
    phases = "".join(
        f'<span class="phase">{escape(p["name"])} {escape(p.get("detail", ""))} · '
        f"{format_duration(p['seconds'])}</span>"
        for p in entry["phases"]
    )
    facts = [
        f"services: {escape(', '.join(entry['services']) or '-')}",
        f"TTR {format_duration(entry['ttr'])}",
        f"RTO {format_duration(entry.get('rto'))}",
        f"seed {escape(str(entry.get('seed')))}",
    ]
    error = f'<div class="error">{escape(entry["error"])}</div>' if entry.get("error") else ""
    png = base64.b64encode(timeline_png(entry)).decode("ascii")
    return (
        f'<div class="exp" id="exp-{index}"><h3>{escape(entry["name"])} '
        f'<span class="pill {outcome}">{outcome}</span></h3>'
        f'<div class="mute">{escape(entry["failure_mode"] or "no fault injected")} · '
        f"{' · '.join(facts)}</div><div class=phases>{phases}</div>{error}"
        f"{_impact_table(entry)}"
        f'<img alt="timeline of {escape(entry["name"])}" src="data:image/png;base64,{png}">'
        "</div>"
    )


def _impact_table(entry: Mapping[str, Any]) -> str:
    if not entry["impact"]:
        return ""
    rows = "".join(
        f"<tr><th scope=row>{escape(name)}</th><td class=num>{imp.get('samples', '-')}</td>"
        f"<td class=num>{imp['error_rate']:.1%}</td>"
        + "".join(f"<td class=num>{format_duration(imp.get(k))}</td>" for k in ("p50", "p95"))
        + f"<td class=num>{imp.get('customers_affected', '-')}/{imp.get('customers', '-')}</td>"
        + "".join(f"<td class=num>{format_duration(imp.get(k))}</td>" for k in ("ttd", "ttr"))
        + f"<td>{'yes' if imp['slo_held'] else 'NO'}</td></tr>"
        for name, imp in entry["impact"].items()
    )
    return (
        "<table><thead><tr><th>journey</th><th class=num>samples</th><th class=num>errors</th>"
        "<th class=num>p50</th><th class=num>p95</th><th class=num>affected</th>"
        "<th class=num>TTD</th><th class=num>TTR</th><th>SLO held</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def write_report(
    results_dir: Path, journal: Mapping[str, Any], *, threshold: float = DEFAULT_THRESHOLD
) -> Path:
    """`<results>/report.html`, compared with the previous journal in the same directory."""
    previous, note = None, ""
    try:
        found = previous_run(results_dir, str(journal["run_id"]))
    except ChaosError as err:  # an old journal must not cost us this run's report
        found, note = None, f"The previous run's journal could not be read: {err}"
    if found is not None:
        previous = found[1]
    path = results_dir / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(REPORT_NAME + ".tmp")
    tmp.write_text(
        render(journal, previous=previous, previous_note=note, threshold=threshold),
        encoding="utf-8",
    )
    tmp.replace(path)
    return path
