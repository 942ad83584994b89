"""`leadops report`, `leadops doctor` and `leadops deploy`: KPIs, installation checks and
the Prefect deployment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from leadops.cli.common import (
    CliError,
    FormatOption,
    NowOption,
    _engine,
    _instant,
    _settings,
    console,
    err,
)
from leadops.cli.output import Format, emit, emit_sections
from leadops.core.settings import get_settings

if TYPE_CHECKING:
    from leadops.reporting.report import Report

commands = typer.Typer()


@commands.command()
def report(
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML report (charts) here.")
    ] = None,
    now: NowOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """KPIs and stuck work: response times, funnel, nurture conversion, scores, cost per
    lead, leads never followed up, per-step delivery and engagement rates, goal conversion
    per campaign and step, escalations.
    --format json|csv carries every section with numbers as numbers (see the marketing
    guide). Exit code 2 when stuck work is above LEADOPS_STUCK_THRESHOLD.

    Example: leadops report --html report.html
    """
    from leadops.reporting import stuck
    from leadops.reporting.report import build_report, write_html
    from leadops.reporting.report_data import report_sections

    settings = _settings()
    result = build_report(_engine(settings), settings, _instant(now))
    if fmt == Format.TABLE:
        _report_tables(result)
    else:
        sections = report_sections(result.kpis, result.stuck)
        sections["experiments"] = [
            {"campaign": r.campaign, **row} for r in result.experiments for row in r.rows()
        ]
        emit_sections(sections, fmt)
    if html is not None:
        (console if fmt == Format.TABLE else err).print(
            f"HTML report written to {write_html(result, html)}"
        )
    if result.stuck.over_threshold:
        err.print(f"[red]stuck work above threshold:[/] {stuck.StuckWorkError(result.stuck)}")
        raise typer.Exit(2)


def _report_tables(result: Report) -> None:
    from leadops.reporting import calibration, kpis, stuck
    from leadops.reporting.experiments import display_rows
    from leadops.reporting.qualification import qualification_rows
    from leadops.reporting.revenue_rows import (
        campaign_revenue_rows,
        revenue_rows,
        source_revenue_rows,
        velocity_rows,
    )

    k = result.kpis
    emit(kpis.headline_rows(k), ["kpi", "value", "note"], Format.TABLE, title="KPIs")
    sections = {
        "Conversion by stage": kpis.funnel_rows(k),
        "Lead status, bands and sunset": qualification_rows(k),
        "Cost per lead by source": kpis.cost_rows(k),
        "Campaign steps": kpis.step_rows(k),
        "Engagement per step: unique messages, of those sent": kpis.engagement_rows(k),
        "Goal conversion per campaign and step": kpis.goal_rows(k),
        "Escalations": kpis.escalation_rows(k),
        "Speed to lead: creation or hand-raise to a rep's first contact": kpis.speed_rows(k),
        f"Sales outcomes ({k.currency})": kpis.outcome_rows(k),
        f"Revenue ({k.currency}; attribution: see `leadops report --format json`, notes)": (
            revenue_rows(k)
        ),
        f"Cost, revenue and ROI per source ({k.currency})": source_revenue_rows(k),
        f"Revenue per campaign ({k.currency}; in full per campaign, and split)": (
            campaign_revenue_rows(k)
        ),
        "Lead velocity rate: qualified leads, month over month": velocity_rows(k),
        "Scoring rules: lift on SQL, SAL and customer": calibration.rule_rows(k),
        "Calibration: conversion by score decile, band and grade": calibration.group_rows(k),
        f"Stuck work: {result.stuck.total} (threshold {result.stuck.threshold})": (
            stuck.finding_rows(result.stuck)
        ),
        "Experiments and holdouts (leadops campaigns results NAME)": display_rows(
            result.experiments
        ),
    }
    emit_sections(
        sections,
        Format.TABLE,
        columns={
            "Conversion by stage": ["stage", "leads now", "reached", "to next stage"],
            "Cost per lead by source": ["source"],
            f"Cost, revenue and ROI per source ({k.currency})": ["source"],
            f"Revenue per campaign ({k.currency}; in full per campaign, and split)": ["campaign"],
            "Campaign steps": ["campaign"],
            "Engagement per step: unique messages, of those sent": ["campaign"],
            "Goal conversion per campaign and step": ["campaign"],
        },
    )
    for name, why in k.missing:
        console.print(f"[dim]not available: {name} ({why})[/]", highlight=False)


@commands.command()
def doctor(fmt: FormatOption = Format.TABLE) -> None:
    """Check settings, database, migrations, config, templates, channels and the public
    URL without sending anything; explain each problem. Exit code 1 if any check fails.

    Example: leadops doctor
    """
    from leadops.ops import doctor as checks

    results = checks.run_checks(get_settings)
    emit(checks.rows(results), ["check", "status", "detail", "fix"], fmt, title="leadops doctor")
    if checks.failed(results):
        raise typer.Exit(1)


@commands.command()
def deploy(
    project: Annotated[
        Path, typer.Option(help="Folder with prefect.yaml, flows/, config/ and templates/.")
    ] = Path(),
) -> None:
    """Create the process work pool `leadops` and deploy every flow in prefect.yaml to the
    Prefect server at PREFECT_API_URL (both commands are the README's, non-interactive).

    Example: PREFECT_API_URL=http://127.0.0.1:4200/api leadops deploy
    """
    from leadops.ops.prefect_stack import PrefectCommandError, deploy_all

    if not os.environ.get("PREFECT_API_URL"):
        raise CliError(
            "PREFECT_API_URL is not set: start a server (`prefect server start`) and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    home = project.resolve()
    env = dict(os.environ)
    env.setdefault("LEADOPS_HOME", str(home))
    try:
        console.print(deploy_all(env=env, cwd=home), markup=False, highlight=False)
    except PrefectCommandError as exc:
        raise CliError(str(exc)) from exc
    console.print(
        f"[green]deployed[/] flow runs will start in {env['LEADOPS_HOME']}; start a worker: "
        "prefect worker start --pool leadops"
    )
