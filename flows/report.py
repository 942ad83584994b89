"""The daily report flow: KPIs and the stuck-work detector, published as artifacts.

The run ends Failed (with the reason in its state message) when stuck work is above
LEADOPS_STUCK_THRESHOLD, after the artifacts are published, so the UI shows both.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import RETRIES, RETRY_DELAYS, flow_settings, retry_if_transient, run_name
from leadops.core.clock import SystemClock, ensure_utc
from leadops.reporting import kpis, stuck
from leadops.reporting.experiments import display_rows
from leadops.reporting.report import Report, build_report, default_html_path, markdown, write_html
from leadops.reporting.revenue import ATTRIBUTION
from leadops.reporting.revenue_rows import source_revenue_rows
from leadops.runtime import Runtime, build_runtime


@task(
    name="compute-report",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def compute_task(runtime: Runtime, now: datetime) -> Report:
    return build_report(runtime.engine, runtime.settings, now)


@flow(name="report", flow_run_name=lambda: run_name("report", "now", "%Y-%m-%d"))
def report_flow(now: datetime | None = None) -> dict[str, int]:
    """Compute the KPIs and stuck work, write the HTML page, publish artifacts."""
    logger = get_run_logger()
    runtime = build_runtime(flow_settings())
    at = ensure_utc(now) if now is not None else SystemClock().now()
    try:
        report = compute_task(runtime, at)
    finally:
        runtime.dispose()
    html_path = write_html(report, default_html_path(runtime.settings, at))
    create_markdown_artifact(
        key="leadops-report",
        markdown=markdown(report, html_path),
        description="KPIs and stuck work",
    )
    create_table_artifact(
        key="leadops-stuck-work",
        table=stuck.finding_rows(report.stuck),
        description=f"Stuck work: {report.stuck.total} (threshold {report.stuck.threshold})",
    )
    create_table_artifact(
        key="leadops-step-rates",
        table=kpis.step_rows(report.kpis),
        description="Per campaign step and channel",
    )
    create_table_artifact(
        key="leadops-engagement",
        table=kpis.engagement_rows(report.kpis) or [{"engagement": "no messages sent yet"}],
        description="Engagement per campaign step: unique messages, of those sent",
    )
    create_table_artifact(
        key="leadops-revenue",
        table=source_revenue_rows(report.kpis) or [{"revenue": "no lead yet"}],
        description=f"Cost, revenue and ROI per source ({report.kpis.currency}). {ATTRIBUTION}",
    )
    create_table_artifact(
        key="leadops-experiments",
        table=display_rows(report.experiments) or [{"experiments": "no A/B test or holdout"}],
        description="A/B variants and holdouts: leads, outcomes, always-valid verdicts (mSPRT)",
    )
    create_link_artifact(
        key="leadops-report-html",
        link=html_path.as_uri(),
        link_text=html_path.name,
        description="The HTML report with charts, on the worker's disk",
    )
    logger.info("report written to %s", html_path)
    if report.stuck.over_threshold:
        raise stuck.StuckWorkError(report.stuck)
    return {"stuck": report.stuck.total, "leads": report.kpis.leads_total}
