"""The nurture flow: plan who is due, then dispatch, and publish what happened.

Scheduled hourly (prefect.yaml, concurrency limit 1). A database lock (leadops.core.locks)
also keeps two runs from overlapping, however they were started. `simulate` runs many
ticks inside one flow run, so a 30-day cycle takes seconds. All logic lives in leadops.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from flows.common import RETRIES, RETRY_DELAYS, flow_settings, retry_if_transient, run_name
from leadops.core import progress
from leadops.core.clock import SimulatedClock, SystemClock, ensure_utc
from leadops.core.locks import LockHeld, run_lock
from leadops.delivery.outcomes import DispatchReport
from leadops.delivery.policy import legend
from leadops.engagement.simulated import EngagementModel, engage, load_engagement_model
from leadops.nurture.calendar import paused_rows
from leadops.nurture.forecast import forecast
from leadops.nurture.plan import PlanReport, plan_all
from leadops.nurture.tick import dispatch_due, simulate
from leadops.reporting import run_table as observe
from leadops.reporting.summary import (
    legend_markdown,
    summary_legend,
    summary_rows,
    touch_summary,
)
from leadops.runtime import Runtime, build_runtime, worker_runtime


@task(
    name="plan",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def plan_task(runtime: Runtime, now: datetime, partition: tuple[int, int] = (0, 1)) -> PlanReport:
    return plan_all(runtime, now, partition)


def plan_partitions(runtime: Runtime, now: datetime, partitions: int) -> PlanReport:
    """Plan every lead as `partitions` task runs (lead id modulo N), merged into one report."""
    if partitions <= 1:
        return plan_task(runtime, now)
    futures = plan_task.map(
        unmapped(runtime), unmapped(now), [(k, partitions) for k in range(partitions)]
    )
    report = PlanReport()
    for part in futures.result():
        report.merge(part)
    return report


@task(
    name="dispatch",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def dispatch_task(
    runtime: Runtime, now: datetime | None, workers: int | None = None
) -> DispatchReport:
    """Send what is due, updating a progress artifact after every batch (with several
    worker processes: after each worker). Safe to retry: every touch is sent at most once
    (leadops.delivery.dispatch)."""
    clock = SimulatedClock(now) if now is not None else SystemClock()
    due = observe.count_due(runtime.engine, clock.now())
    artifact = create_progress_artifact(
        progress=0.0, key="nurture-dispatch", description=f"Dispatching {due} due messages"
    )
    done = 0

    def advance(batch: int) -> None:
        nonlocal done
        done += batch
        update_progress_artifact(
            artifact_id=artifact,  # type: ignore[arg-type]  # sync call returns the UUID
            progress=100.0 * min(1.0, done / due) if due else 100.0,
        )

    processes = workers or runtime.settings.dispatch_workers
    report = dispatch_due(runtime, clock, workers=processes, build=worker_runtime, progress=advance)
    update_progress_artifact(artifact_id=artifact, progress=100.0)  # type: ignore[arg-type]
    return report


@task(name="simulate-day", cache_policy=NO_CACHE)
def simulate_day_task(runtime: Runtime, start: datetime, end: datetime) -> int:
    return simulate(runtime, start, end).ticks


@task(name="simulate-engagement", cache_policy=NO_CACHE)
def engage_task(runtime: Runtime, model: EngagementModel, start: datetime, end: datetime) -> int:
    """Leads answer the day's messages as the engagement model says; events applied."""
    return engage(runtime, model, start, end).events_total


def _legend_section(codes: list[str]) -> str:
    """The Markdown legend of the reason codes an artifact shows (empty when none)."""
    rows = legend(codes)
    return f"\n## Reason codes\n\n{legend_markdown(rows)}\n" if rows else ""


FORECAST_DAYS = 14


@task(name="forecast", cache_policy=NO_CACHE)
def forecast_task(runtime: Runtime, now: datetime) -> int:
    """Publish what will go out in the next FORECAST_DAYS days (sends nothing)."""
    result = forecast(runtime, now, FORECAST_DAYS)
    create_table_artifact(
        key="nurture-forecast",
        table=result.rows(),
        description=f"Next {FORECAST_DAYS} days from {now:%Y-%m-%d %H:%M} UTC: messages per "
        f"day (UTC), campaign, step and channel ({result.total} in all)",
    )
    return result.total


def _paused_markdown(runtime: Runtime, now: datetime) -> str:
    """The paused campaigns, since when, by whom and why, as markdown lines."""
    rows = paused_rows(runtime.engine, now)
    if not rows:
        return "- paused campaigns: none\n"
    lines = [
        f"  - {row['campaign']}: since {row['paused_since']} by {row['paused_by']}"
        + (f" ({row['reason']})" if row["reason"] else "")
        for row in rows
    ]
    return "- paused campaigns:\n" + "\n".join(lines) + "\n"


def _publish_summary(runtime: Runtime, key: str, description: str) -> None:
    summaries = touch_summary(runtime.engine)
    codes = summary_legend(summaries)
    if codes:
        description += "\n\nReason codes:\n\n" + legend_markdown(codes)
    create_table_artifact(key=key, table=summary_rows(summaries), description=description)


@flow(name="nurture", flow_run_name=lambda: run_name("nurture", "now"), log_prints=True)
def nurture_flow(
    now: datetime | None = None, partitions: int | None = None, workers: int | None = None
) -> dict[str, int]:
    """One tick: segment and plan every lead (in `partitions` task runs; default
    LEADOPS_PLAN_PARTITIONS), dispatch what is due (in `workers` processes; default
    LEADOPS_DISPATCH_WORKERS), publish a summary."""
    logger = get_run_logger()
    settings = flow_settings()
    runtime = build_runtime(settings).nurture()
    tick_time = ensure_utc(now) if now is not None else SystemClock().now()
    parts = partitions if partitions is not None else settings.resolved_plan_partitions
    if parts < 1:
        raise ValueError(f"partitions must be at least 1, got {parts}")
    try:
        with run_lock(runtime.engine, "nurture"):
            plan = plan_partitions(runtime, tick_time, parts)
            dispatch = dispatch_task(runtime, tick_time if now is not None else None, workers)
    except LockHeld as exc:
        logger.warning("skipped: %s", exc)
        create_markdown_artifact(
            key="nurture-tick",
            markdown=f"# Nurture tick {tick_time:%Y-%m-%d %H:%M} UTC skipped\n\n{exc}\n",
            description="What this tick did",
        )
        return {"skipped_overlap": 1}
    held = ", ".join(f"{reason}: {n}" for reason, n in sorted(dispatch.held.items())) or "none"
    create_markdown_artifact(
        key="nurture-tick",
        markdown=(
            f"# Nurture tick {tick_time:%Y-%m-%d %H:%M} UTC\n\n"
            f"- leads planned: {plan.leads}\n- newly enrolled: {sum(plan.enrolled.values())}\n"
            f"- touches created: {plan.planned}\n- sent: {dispatch.sent_total}\n"
            f"- held: {held}\n- failed: {dispatch.failed}\n- ambiguous: {dispatch.ambiguous}\n"
            f"- set aside as dead letters: {dispatch.dead_letters}\n"
            f"- recovered from a stopped run: {dispatch.recovered}\n"
            + _paused_markdown(runtime, tick_time)
            + _legend_section([*dispatch.held, *dispatch.skipped])
        ),
        description="What this tick did",
    )
    create_table_artifact(
        key="nurture-run",
        table=observe.run_rows(plan.planned_steps, dispatch),
        description="This run, per campaign, step and channel: planned, sent, held by "
        "reason, skipped, failed, ambiguous",
    )
    _publish_summary(runtime, "nurture-summary", "All touches per campaign, step and channel")
    forecast_task(runtime, tick_time)
    return {
        "leads": plan.leads,
        "planned": plan.planned,
        **dispatch.counts(),
        "recovered": dispatch.recovered,
    }


@flow(name="simulate", flow_run_name=lambda: run_name("simulate", "start"))
def simulate_flow(start: datetime, days: int = 30, engagement: str | None = None) -> dict[str, int]:
    """Run the nurture loop through `days` simulated days from `start`, day by day; with
    an `engagement` model file, leads answer what they are sent."""
    logger = get_run_logger()
    runtime = build_runtime(flow_settings()).nurture()
    model = load_engagement_model(Path(engagement)) if engagement else None
    start = ensure_utc(start)
    artifact = create_progress_artifact(progress=0.0, description=f"Simulating {days} days")
    ticks = 0
    with run_lock(runtime.engine, "nurture"):
        for day in range(days):
            day_start = start + timedelta(days=day)
            ticks += simulate_day_task(runtime, day_start, day_start + timedelta(days=1))
            if model is not None:
                engage_task(runtime, model, day_start, day_start + timedelta(days=1))
            update_progress_artifact(
                artifact_id=artifact,  # type: ignore[arg-type]  # sync call returns the UUID
                progress=100.0 * (day + 1) / days,
            )
            progress.notify((day + 1) / days, f"day {day + 1} of {days}")
    logger.info("simulated %d days in %d ticks", days, ticks)
    _publish_summary(runtime, "simulation-summary", f"{days} simulated days from {start:%Y-%m-%d}")
    return {"days": days, "ticks": ticks}
