"""The fast path as a Prefect background task: `leadops serve` submits one run of
`handoff_task` (`.delay()`) after a hand-raise is stored, and `leadops handoff-worker`
(a long-running Prefect task worker, `serve_handoff`) runs it at once: no deployment,
no worker polling, no process start per run. Each run shows in the Prefect UI (Runs,
Task runs). All logic lives in leadops.ops.handoff.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.task_worker import serve

from flows.common import RETRIES, RETRY_DELAYS, flow_settings, retry_if_transient
from leadops.core.clock import SystemClock
from leadops.ops.handoff import run_fast_pass

TASK_NAME = "hand-off"


def _run_name() -> str:
    return f"{TASK_NAME}-{SystemClock().now():%Y-%m-%dT%H:%M:%SZ}"


@task(
    name=TASK_NAME,
    task_run_name=_run_name,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
)
def handoff_task() -> dict[str, int]:
    """Apply new webhook events, escalate the leads they made sales-ready, notify reps."""
    report = run_fast_pass(flow_settings())
    sent = report.notify.sent if report.notify else 0
    if report.escalated or report.dead_letters:
        create_markdown_artifact(
            key="hand-off",
            markdown=(
                f"# Fast hand-off\n\n- webhook events applied: {report.events}\n"
                f"- escalated: {report.escalated}\n- notifications sent: {sent}\n"
                f"- set aside as dead letters: {report.dead_letters} (leadops deadletters list)\n"
            ),
            description="What this fast hand-off did",
        )
    return {
        "events": report.events,
        "escalated": report.escalated,
        "sent": sent,
        "dead_letters": report.dead_letters,
    }


def submit_handoff() -> Any:
    """Submit one run for the task worker (from `leadops serve`); returns its future."""
    return handoff_task.delay()


def serve_handoff() -> None:
    """Serve `handoff_task` until stopped, one run at a time (a run applies everything
    pending, so two at once would only wait on each other's locks)."""
    serve(handoff_task, limit=1)
