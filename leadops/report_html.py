"""The KPI report as one self-contained HTML page: inline CSS and SVG charts, no scripts,
no external resources, so it opens anywhere (a browser, an e-mail attachment, an archive).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape
from typing import Any

from leadops.kpis import KpiReport, cost_rows, funnel_rows, headline_rows, step_rows
from leadops.stuck import StuckReport, finding_rows

BAR = "#3b6fd8"
ALERT = "#c2410c"
OK = "#15803d"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;
background:#f5f6f8;color:#1f2933}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.sub{color:#52606d;margin-bottom:18px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:12px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px #0002}
.card b{display:block;font-size:22px;margin:2px 0}.card span{color:#52606d;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:16px}
.panel{background:#fff;border-radius:8px;padding:14px;box-shadow:0 1px 2px #0002}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e4e7eb}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#c2410c;font-weight:600}.good{color:#15803d;font-weight:600}
.missing li{color:#52606d}svg text{font:12px system-ui,sans-serif;fill:#1f2933}
.panel svg{width:100%;height:auto}
"""


def _table(rows: Sequence[dict[str, Any]], empty: str = "nothing to show") -> str:
    if not rows:
        return f"<p>{escape(empty)}</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{escape('' if value is None else str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def hbar_chart(items: Sequence[tuple[str, int]], *, title: str, width: int = 520) -> str:
    """Horizontal bars, one per (label, value): used for the funnel."""
    row_h, label_w = 28, 110
    height = row_h * len(items) + 30
    top = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="14" font-weight="600">{escape(title)}</text>',
    ]
    span = width - label_w - 60
    for i, (label, value) in enumerate(items):
        y = 26 + i * row_h
        w = max(1.0, span * value / top) if value else 0
        parts.append(f'<text x="0" y="{y + 15}">{escape(label)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 8}" '
            f'rx="3" fill="{BAR}"><title>{escape(label)}: {value}</title></rect>'
        )
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def column_chart(
    items: Sequence[tuple[str, int]], *, title: str, width: int = 520, height: int = 240
) -> str:
    """Vertical columns, one per (label, value), with every few labels on the x axis."""
    left, bottom, top_pad = 36, 36, 26
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    peak = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="14" font-weight="600">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 8}" y2="{top_pad + plot_h}" '
        'stroke="#9aa5b1"/>',
        f'<text x="{left - 4}" y="{top_pad + 10}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top_pad + plot_h}" text-anchor="end">0</text>',
    ]
    if not items:
        parts.append(f'<text x="{left + 10}" y="{top_pad + plot_h / 2}">no data yet</text>')
    slot = plot_w / max(1, len(items))
    every = max(1, len(items) // 8)
    for i, (label, value) in enumerate(items):
        h = plot_h * value / peak
        x = left + i * slot + slot * 0.12
        parts.append(
            f'<rect x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{slot * 0.76:.1f}" '
            f'height="{h:.1f}" fill="{BAR}"><title>{escape(label)}: {value}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.38:.1f}" y="{top_pad + plot_h + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _days_label(days: Sequence[tuple[date, int]]) -> list[tuple[str, int]]:
    return [(f"{d:%m-%d}", n) for d, n in days]


def render(kpis: KpiReport, stuck: StuckReport, *, title: str = "leadops report") -> str:
    """The whole page as one HTML string."""
    cards = "".join(
        f'<div class="card"><span>{escape(r["kpi"])}</span><b>{escape(r["value"])}</b>'
        f"<span>{escape(r['note'])}</span></div>"
        for r in headline_rows(kpis)
    )
    state_cls = "bad" if stuck.over_threshold else "good"
    state = (
        f'<p class="{state_cls}">{stuck.total} stuck item(s); threshold {stuck.threshold}: '
        f"{'ABOVE threshold' if stuck.over_threshold else 'ok'}</p>"
    )
    funnel = hbar_chart([(f.stage, f.reached) for f in kpis.funnel], title="Funnel (reached)")
    scores = column_chart(kpis.score_histogram, title="Lead score distribution")
    sends = column_chart(_days_label(kpis.sends_per_day), title="Messages sent per day (UTC)")
    missing = "".join(
        f"<li><b>{escape(name)}</b>: {escape(why)}</li>" for name, why in kpis.missing
    )
    samples = "".join(
        f"<h3>{escape(f.check.title)} ({f.count})</h3>{_table(f.sample)}"
        for f in stuck.findings
        if f.sample
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{escape(title)}</h1>
<div class="sub">as of {kpis.now:%Y-%m-%d %H:%M} UTC &middot; {kpis.leads_total} leads</div>
<div class="cards">{cards}</div>
<h2>Stuck work</h2>{state}{_table(finding_rows(stuck))}{samples}
<h2>Charts</h2>
<div class="grid"><div class="panel">{funnel}</div><div class="panel">{scores}</div>
<div class="panel">{sends}</div></div>
<h2>Conversion by stage</h2>{_table(funnel_rows(kpis))}
<h2>Cost per lead by source ({escape(kpis.currency)})</h2>{_table(cost_rows(kpis))}
<h2>Campaign steps</h2>{_table(step_rows(kpis), "no messages yet")}
<h2>Not available yet</h2><ul class="missing">{missing}</ul>
</main></body></html>
"""
