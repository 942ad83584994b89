"""The escalate flow: every minute, hand sales-ready leads to reps and chase the SLA.

Scheduled every minute (prefect.yaml). All logic lives in leadops.sales.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import RETRIES, RETRY_DELAYS, flow_settings, retry_if_transient, run_name
from leadops.core.clock import SystemClock, ensure_utc
from leadops.runtime import Runtime, build_runtime
from leadops.sales import handoff, scan, sla
from leadops.sales import notify as escalation_notify
from leadops.sales.runtime import EscalationRuntime


@task(
    name="apply-inbox",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def inbox_task(runtime: Runtime, now: datetime) -> handoff.HandoffReport:
    return handoff.apply_inbox_and_escalate(runtime, runtime.require_escalation(), now)


@task(
    name="scan-sales-ready",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def scan_task(runtime: EscalationRuntime, now: datetime) -> int:
    results = scan.find_sales_ready(runtime, now, deliver=False)
    return sum(result.created for result in results)


@task(
    name="sla",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def sla_task(runtime: EscalationRuntime, now: datetime) -> sla.SlaReport:
    return sla.check_slas(runtime, now, deliver=False)


@task(name="notify", cache_policy=NO_CACHE)
def notify_task(runtime: EscalationRuntime, now: datetime) -> escalation_notify.NotifyReport:
    return escalation_notify.deliver_notifications(runtime, now)


@flow(
    name="escalate",
    flow_run_name=lambda: run_name("escalate", "now"),
    log_prints=True,
)
def escalate_flow(now: datetime | None = None) -> dict[str, int]:
    """Escalate SQL leads without an active escalation, re-route missed SLAs, notify."""
    runtime = build_runtime(flow_settings())
    escalation = runtime.require_escalation()  # no or a broken routing.yaml fails the run
    runtime.nurture()  # applying the inbox re-segments: campaigns and segments must load
    at = ensure_utc(now) if now is not None else SystemClock().now()
    fast = inbox_task(runtime, at)  # new webhook events: a hand-raise reaches a rep now
    escalated = fast.escalated + scan_task(escalation, at)
    sla = sla_task(escalation, at)
    sent = notify_task(escalation, at)
    dead_letters = fast.dead_letters + sla.failed
    if escalated or sla.rerouted or sla.to_queue or sent.failed or sent.ambiguous or dead_letters:
        create_markdown_artifact(
            key="escalate-run",
            markdown=(
                f"# Escalations {at:%Y-%m-%d %H:%M} UTC\n\n"
                f"- webhook events applied: {fast.events}\n"
                f"- escalated: {escalated}\n- re-routed: {sla.rerouted}\n"
                f"- to the fallback queue: {sla.to_queue}\n- notifications sent: {sent.sent}\n"
                f"- failed: {sent.failed}\n- ambiguous: {sent.ambiguous}\n"
                f"- set aside as dead letters: {dead_letters} (leadops deadletters list)\n"
            ),
            description="What this escalation run did",
        )
    return {
        "events": fast.events,
        "escalated": escalated,
        "rerouted": sla.rerouted,
        "to_queue": sla.to_queue,
        "sent": sent.sent,
        "failed": sent.failed,
        "ambiguous": sent.ambiguous,
        "dead_letters": dead_letters,
    }
