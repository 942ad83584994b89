"""The daily report: KPIs plus the stuck-work detector, as tables, markdown and HTML.

`leadops report` and the report flow (flows/report.py) both call `build_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from leadops.core.settings import Settings
from leadops.delivery.campaigns import load_campaigns
from leadops.predictive.config import load_predictive
from leadops.reporting import calibration, kpis, stuck
from leadops.reporting import html as report_html
from leadops.reporting.experiments import CampaignResults, all_results, display_rows
from leadops.reporting.kpi_figures import KpiReport
from leadops.reporting.predictive_section import predictive_card, predictive_html
from leadops.reporting.qualification import qualification_rows
from leadops.reporting.revenue import ATTRIBUTION
from leadops.reporting.revenue_rows import (
    campaign_revenue_rows,
    revenue_rows,
    source_revenue_rows,
    velocity_rows,
)


@dataclass
class Report:
    kpis: KpiReport
    stuck: stuck.StuckReport
    experiments: list[CampaignResults] = field(default_factory=list)  # A/B tests, holdouts
    predictive: dict[str, Any] | None = None  # the model card (leadops.predictive.card)

    @property
    def now(self) -> datetime:
        return self.kpis.now


def build_report(engine: Engine, settings: Settings, now: datetime) -> Report:
    """Compute every KPI and run every stuck-work check as of `now`."""
    return Report(
        kpis=kpis.compute(engine, now, config_dir=settings.config_dir),
        stuck=stuck.detect(
            engine,
            now,
            threshold=settings.stuck_threshold,
            stuck_after=timedelta(hours=settings.stuck_after_hours),
            lookback=timedelta(hours=settings.stuck_lookback_hours),
        ),
        experiments=_experiments(engine, settings),
        predictive=predictive_card(engine, load_predictive(settings.config_dir)),
    )


def _experiments(engine: Engine, settings: Settings) -> list[CampaignResults]:
    """The A/B tests and holdouts of the campaign files (none without campaign files)."""
    if not any((settings.config_dir / "campaigns").glob("*.yaml")):
        return []
    return all_results(engine, load_campaigns(settings.config_dir))


def write_html(report: Report, path: Path) -> Path:
    """Write the self-contained HTML page; returns the absolute path."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        report_html.render(
            report.kpis,
            report.stuck,
            experiments=report.experiments,
            predictive=predictive_html(report.predictive),
        ),
        encoding="utf-8",
    )
    return path


def default_html_path(settings: Settings, now: datetime) -> Path:
    return settings.resolved_report_dir / f"report-{now:%Y-%m-%d}.html"


def _md_cell(value: Any) -> str:
    return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "_none_\n"
    columns = list(rows[0])
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(_md_cell(row.get(c)) for c in columns) + " |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def markdown(report: Report, html_path: Path | None = None) -> str:
    """The report as markdown, for a Prefect artifact."""
    k, s = report.kpis, report.stuck
    verdict = "**ABOVE threshold**" if s.over_threshold else "ok"
    parts = [
        f"# leadops report {k.now:%Y-%m-%d %H:%M} UTC\n",
        f"Stuck work: **{s.total}** item(s), threshold {s.threshold}: {verdict}\n",
        markdown_table(stuck.finding_rows(s)),
        "## KPIs\n",
        markdown_table(kpis.headline_rows(k)),
        "## Conversion by stage\n",
        markdown_table(kpis.funnel_rows(k)),
        "## Lead status, bands and sunset\n",
        markdown_table(qualification_rows(k)),
        f"## Cost per lead by source ({k.currency})\n",
        markdown_table(kpis.cost_rows(k)),
        "## Campaign steps\n",
        markdown_table(kpis.step_rows(k)),
        "## Engagement per step (of the messages sent)\n",
        markdown_table(kpis.engagement_rows(k)),
        "## Goal conversion per campaign and step\n",
        markdown_table(kpis.goal_rows(k)),
        "## Escalations\n",
        markdown_table(kpis.escalation_rows(k)),
        "## Speed to lead\n",
        markdown_table(kpis.speed_rows(k)),
        "## Sales outcomes\n",
        markdown_table(kpis.outcome_rows(k)),
        f"## Revenue ({k.currency})\n",
        f"Attribution: {ATTRIBUTION}\n",
        markdown_table(revenue_rows(k)),
        f"## Cost, revenue and ROI per source ({k.currency})\n",
        markdown_table(source_revenue_rows(k)),
        f"## Revenue per campaign ({k.currency})\n",
        markdown_table(campaign_revenue_rows(k)),
        "## Lead velocity rate (qualified leads, month over month)\n",
        markdown_table(velocity_rows(k)),
        "## Scoring rules: lift on SQL, SAL and customer\n",
        markdown_table(calibration.rule_rows(k)),
        "## Calibration: conversion by score decile, band and grade\n",
        markdown_table(calibration.group_rows(k)),
        "## Experiments and holdouts\n",
        markdown_table(display_rows(report.experiments)),
    ]
    if k.missing:
        parts += [
            "## Not available\n",
            "\n".join(f"- {name}: {why}" for name, why in k.missing) + "\n",
        ]
    if html_path is not None:
        parts.append(f"\nHTML report with charts: [{html_path.name}]({html_path.as_uri()})\n")
    return "\n".join(parts)
