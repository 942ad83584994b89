"""The rescore flow: apply the webhook inbox, score, decay, move stages, re-segment.

Scheduled every 5 minutes (prefect.yaml). All logic lives in leadops.engagement.rescore; leads that
became sales-ready are returned and published as a table for escalation.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import RETRIES, RETRY_DELAYS, flow_settings, retry_if_transient, run_name
from leadops.core.clock import SystemClock, ensure_utc
from leadops.engagement import rescore
from leadops.engagement.report import RescoreReport, SalesReady
from leadops.runtime import Runtime, build_runtime
from leadops.sales import handoff


@task(
    name="rescore",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def rescore_task(runtime: Runtime, now: datetime) -> RescoreReport:
    return rescore.run_rescore(runtime, now)


@task(
    name="escalate-sales-ready",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def escalate_task(
    runtime: Runtime, ready: list[SalesReady], now: datetime
) -> handoff.HandoffReport | None:
    return handoff.escalate_if_routed(runtime.escalation, ready, now)


@flow(name="rescore", flow_run_name=lambda: run_name("rescore", "now"), log_prints=True)
def rescore_flow(now: datetime | None = None) -> dict[str, int]:
    """One rescore run; returns counts (the sales-ready leads are in the table artifact)."""
    runtime = build_runtime(flow_settings()).nurture()
    at = ensure_utc(now) if now is not None else SystemClock().now()
    report = rescore_task(runtime, at)
    # Escalate in the same run, so a webhook reaches a rep within one rescore tick.
    handed = escalate_task(runtime, report.sales_ready, at) if report.sales_ready else None
    create_markdown_artifact(key="rescore-run", markdown=summary_markdown(report, handed))
    if report.sales_ready:
        create_table_artifact(
            key="sales-ready",
            table=[item.row() for item in report.sales_ready],
            description="Leads that reached SQL or raised a hand in this run",
        )
    counts = report.counts()
    counts["escalated"] = handed.escalated if handed else 0
    counts["escalation_dead_letters"] = handed.dead_letters if handed else 0
    return counts


def summary_markdown(report: RescoreReport, handed: handoff.HandoffReport | None = None) -> str:
    def counts(counter: dict[str, int]) -> str:
        return ", ".join(f"{key}: {n}" for key, n in sorted(counter.items())) or "none"

    return (
        f"# Rescore {report.now:%Y-%m-%d %H:%M} UTC\n\n"
        f"- events applied: {counts(report.events)}\n"
        f"- not applied: {counts(report.ignored)}\n"
        f"- unknown site event types: {counts(report.unknown_site_types)}\n"
        f"- ledger rows: {report.ledger_rows} engagement, {report.fit_rows} fit, "
        f"{report.decay_rows} decay\n"
        f"- stage changes: {counts(report.stage_changes)}\n"
        f"- suppressed: {counts(report.suppressed)}\n"
        f"- sequences stopped: {counts(report.sequences_stopped)}\n"
        f"- enrolled: {counts(report.plan.enrolled)}\n"
        f"- sales-ready: {len(report.sales_ready)}\n"
        f"- escalated to a rep: {handed.escalated if handed else 0}\n"
        f"- set aside as dead letters: {report.dead_letters} inbox events, "
        f"{handed.dead_letters if handed else 0} escalations (leadops deadletters list)\n"
    )
