"""The KPI report as one self-contained HTML page: inline CSS and SVG charts, no scripts,
no external resources, so it opens anywhere (a browser, an e-mail attachment, an archive).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape
from typing import Any

from leadops.reporting import calibration
from leadops.reporting.experiments import CampaignResults, display_rows
from leadops.reporting.kpi_figures import KpiReport
from leadops.reporting.kpis import (
    cost_rows,
    engagement_rows,
    escalation_rows,
    funnel_rows,
    goal_rows,
    headline_rows,
    outcome_rows,
    speed_rows,
    step_rows,
)
from leadops.reporting.lift import CONFIDENCE, MIN_CONVERSIONS, MIN_GROUP
from leadops.reporting.qualification import qualification_rows
from leadops.reporting.revenue import ATTRIBUTION
from leadops.reporting.revenue_rows import (
    campaign_revenue_rows,
    revenue_rows,
    source_revenue_rows,
    velocity_rows,
)
from leadops.reporting.stuck import StuckReport, finding_rows

BAR = "#3b6fd8"
# Series colours of the engagement chart.
SERIES = {"opened": "#3b6fd8", "clicked": "#15803d", "replied": "#b45309"}
# Series colours of the calibration charts, one per outcome.
OUTCOME_COLORS = {"sql": "#3b6fd8", "sal": "#b45309", "customer": "#15803d"}
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
.panel svg{width:100%;height:auto}.wide{grid-column:1/-1}
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


def grouped_rate_chart(
    groups: Sequence[tuple[str, Sequence[tuple[str, float | None]]]],
    *,
    title: str,
    colors: dict[str, str],
    width: int = 1100,
) -> str:
    """Horizontal bars of rates (0..1), a group per label with one bar per series; a
    series a group does not measure (None) is left out. Used for engagement per step."""
    bar_h, gap, label_w = 14, 12, 230
    rows = [(label, [(name, v) for name, v in series if v is not None]) for label, series in groups]
    height = 60 + sum(len(bars) * bar_h + gap for _, bars in rows)
    span = width - label_w - 70
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="14" font-weight="600">{escape(title)}</text>',
    ]
    x = 0
    for name, color in colors.items():  # the legend, under the title
        parts.append(f'<rect x="{x}" y="24" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{x + 16}" y="34">{escape(name)}</text>')
        x += 28 + 8 * len(name)
    if not rows:
        parts.append('<text x="0" y="60">no messages sent yet</text>')
    y = 48
    for label, bars in rows:
        parts.append(f'<text x="0" y="{y + len(bars) * bar_h / 2 + 4:.1f}">{escape(label)}</text>')
        for name, value in bars:
            w = max(1.0, span * value) if value else 0
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                f'fill="{colors.get(name, BAR)}"><title>{escape(label)} {escape(name)}: '
                f"{100 * value:.1f}%</title></rect>"
            )
            parts.append(
                f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h - 3}">{100 * value:.0f}%</text>'
            )
            y += bar_h
        y += gap
    parts.append("</svg>")
    return "".join(parts)


def lift_chart(
    groups: Sequence[tuple[str, Sequence[tuple[str, float | None, float | None, float | None]]]],
    *,
    title: str,
    colors: dict[str, str],
    width: int = 1100,
) -> str:
    """Intervals on a log scale around 1 (no lift), a group per label with one line per
    series (its interval, a dot at the estimate); a series without an interval says so.
    Used for the lift of the scoring rules."""
    row_h, gap, label_w, pad = 16, 10, 230, 70
    span, height = width - label_w - pad, 70 + sum(len(s) * row_h + gap for _, s in groups)
    values = [v for _, series in groups for *_, low, high in series for v in (low, high) if v]
    edge = max([2.0, *(max(v, 1 / v) for v in values)])
    edge = min(64.0, 2.0 ** math.ceil(math.log2(edge)))

    def x(value: float) -> float:
        clipped = min(edge, max(1 / edge, value))
        return label_w + span * (math.log(clipped) / math.log(edge) + 1) / 2

    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="14" font-weight="600">{escape(title)}</text>',
    ]
    left = 0
    for name, color in colors.items():  # the legend, under the title
        parts.append(f'<rect x="{left}" y="24" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{left + 16}" y="34">{escape(name)}</text>')
        left += 28 + 8 * len(name)
    tick = 1 / edge
    while tick <= edge:
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="44" x2="{x(tick):.1f}" y2="{height - 18}" '
            f'stroke="{"#52606d" if tick == 1 else "#e4e7eb"}"/>'
            f'<text x="{x(tick):.1f}" y="{height - 4}" text-anchor="middle">{tick:g}x</text>'
        )
        tick *= 2
    if not groups:
        parts.append('<text x="0" y="60">no scored leads yet</text>')
    y = 48
    for label, series in groups:
        parts.append(
            f'<text x="0" y="{y + len(series) * row_h / 2 + 4:.1f}">{escape(label)}</text>'
        )
        for name, mid, low, high in series:
            color = colors.get(name, BAR)
            if mid is None or low is None or high is None:
                parts.append(
                    f'<text x="{x(1) + 6:.1f}" y="{y + 12}">{escape(name)}: too few</text>'
                )
            else:
                parts.append(
                    f'<line x1="{x(low):.1f}" y1="{y + 7}" x2="{x(high):.1f}" y2="{y + 7}" '
                    f'stroke="{color}" stroke-width="4"><title>{escape(label)} {escape(name)}: '
                    f"{mid:.2f}x ({low:.2f} to {high:.2f})</title></line>"
                    f'<circle cx="{x(mid):.1f}" cy="{y + 7}" r="4" fill="{color}"/>'
                )
            y += row_h
        y += gap
    parts.append("</svg>")
    return "".join(parts)


def _calibration_section(kpis: KpiReport) -> str:
    """Conversion by decile, band and grade (bars), each rule's lift (intervals), tables."""
    outcomes = calibration.OUTCOMES
    deciles = grouped_rate_chart(
        [
            (
                f"decile {g.group}: score {calibration.score_range(g)} "
                f"({calibration.group_label(g)})",
                [(o, g.rate(o)) for o in outcomes],
            )
            for g in kpis.calibration
            if g.by == "decile"
        ],
        title="Conversion by score decile (score before the hand-off to sales)",
        colors=OUTCOME_COLORS,
    )
    groups = grouped_rate_chart(
        [
            (f"{g.by} {g.group} ({calibration.group_label(g)})", [(o, g.rate(o)) for o in outcomes])
            for g in kpis.calibration
            if g.by != "decile"
        ],
        title="Conversion by band and grade",
        colors=OUTCOME_COLORS,
    )
    rules: dict[str, list[tuple[str, float | None, float | None, float | None]]] = {}
    for r in kpis.rule_lift:
        values = (None, None, None) if r.verdict == "too_few" else (r.lift, r.lift_low, r.lift_high)
        rules.setdefault(f"{r.rule} ({r.fired} leads)", []).append((r.outcome, *values))
    lifts = lift_chart(
        list(rules.items()),
        title="Lift of each scoring rule (leads that fired it against the others)",
        colors=OUTCOME_COLORS,
    )
    return f"""<h2>Calibration: do scores and rules predict sales?</h2>
<p class="sub">{kpis.calibration_leads} leads, each with the highest score it had before
its hand-off to sales (leads never handed off: up to now); {kpis.calibration_not_scored}
handed off before any score are left out. A rule predicts an outcome when its whole
interval lies right of 1x (the leads that fired it convert more); the intervals hold for
all the rules together ({CONFIDENCE:.0%}). A rule fired, or not fired, by fewer than
{MIN_GROUP} leads, or with fewer than {MIN_CONVERSIONS} conversions, gets no verdict.</p>
<div class="grid"><div class="panel wide">{lifts}</div><div class="panel wide">{deciles}</div>
<div class="panel wide">{groups}</div></div>
<h3>Scoring rules: lift on SQL, SAL and customer</h3>
{_table(calibration.rule_rows(kpis), "no scored leads yet")}
<h3>Conversion by score decile, band and grade</h3>
{_table(calibration.group_rows(kpis), "no scored leads yet")}"""


def _engagement_groups(kpis: KpiReport) -> list[tuple[str, list[tuple[str, float | None]]]]:
    return [
        (
            f"{s.campaign} {s.step} {s.channel}",
            [(name, s.rate(s.engagement.get(name))) for name in SERIES],
        )
        for s in kpis.steps
        if s.accepted
    ]


def _days_label(days: Sequence[tuple[date, int]]) -> list[tuple[str, int]]:
    return [(f"{d:%m-%d}", n) for d, n in days]


EXPERIMENTS_NOTE = """<p class="sub">Leads per A/B variant and per arm (the campaign's leads and
its holdout, who are sent nothing). A test compares each variant's rate of its metric (of
the leads it was sent to) with the control's, by a sequential test that stays valid
however often it is read (mSPRT); its interval is a 95% always-valid interval of the
difference. Below 200 leads per variant it says &ldquo;too early&rdquo;; until proven it
is &ldquo;inconclusive&rdquo; and the control is kept. The campaign row's difference and
interval are its lift in SQL reached over the holdout.</p>"""


def _experiments(results: Sequence[CampaignResults]) -> str:
    if not results:
        return ""
    return f"<h2>Experiments and holdouts</h2>{EXPERIMENTS_NOTE}{_table(display_rows(results))}"


def render(
    kpis: KpiReport,
    stuck: StuckReport,
    *,
    title: str = "leadops report",
    experiments: Sequence[CampaignResults] = (),
    predictive: str = "",
) -> str:
    """The whole page as one HTML string (`predictive`: its section, already HTML)."""
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
    engagement = grouped_rate_chart(
        _engagement_groups(kpis),
        title="Engagement per campaign step (share of messages sent)",
        colors=SERIES,
    )
    missing = "".join(
        f"<li><b>{escape(name)}</b>: {escape(why)}</li>" for name, why in kpis.missing
    )
    missing_section = f'<h2>Not available</h2><ul class="missing">{missing}</ul>' if missing else ""
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
<div class="panel">{sends}</div><div class="panel wide">{engagement}</div></div>
<h2>Escalations to sales</h2>{_table(escalation_rows(kpis))}
<h2>Speed to lead</h2>
<p class="sub">From the hand-raise (a demo request, a reply) or the lead&rsquo;s creation (a
lead that reached SQL) to the rep&rsquo;s first logged contact; each escalation counts on its
own. Per rep: who made the first contact, else who holds it now.</p>
{_table(speed_rows(kpis))}
<h2>Sales outcomes</h2>{_table(outcome_rows(kpis))}
<h2>Revenue ({escape(kpis.currency)})</h2>
<p class="sub">{escape(ATTRIBUTION)}</p>
{_table(revenue_rows(kpis))}
<h3>Cost, revenue and ROI per source</h3>{_table(source_revenue_rows(kpis))}
<h3>Revenue per campaign</h3>{_table(campaign_revenue_rows(kpis), "no campaign yet")}
<h3>Lead velocity rate (qualified leads, month over month)</h3>{_table(velocity_rows(kpis))}
{_calibration_section(kpis)}
{predictive}
<h2>Conversion by stage</h2>{_table(funnel_rows(kpis))}
<h2>Lead status, bands and sunset</h2>{_table(qualification_rows(kpis))}
<h2>Cost per lead by source ({escape(kpis.currency)})</h2>{_table(cost_rows(kpis))}
<h2>Campaign steps</h2>{_table(step_rows(kpis), "no messages yet")}
<h2>Engagement per step</h2>
<p class="sub">Unique messages with at least one such event, of the messages sent (accepted
by the channel, later bounces included); &ldquo;-&rdquo;: the channel does not report it.
Opens by mail privacy proxies are not opens.</p>
{_table(engagement_rows(kpis), "no messages sent yet")}
<h2>Goal conversion</h2>
<p class="sub">Per campaign with a goal: the enrollments the goal ended; per step: of the
enrollments sent that step, those that reached the goal after it went out.</p>
{_table(goal_rows(kpis), "no campaign has a goal")}
{_experiments(experiments)}
{missing_section}
</main></body></html>
"""
