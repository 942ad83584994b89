"""The nurture flow: plan who is due, then dispatch, and publish what happened.

Scheduled hourly (prefect.yaml). `simulate` runs many ticks inside one flow run, so a
30-day cycle takes seconds. All logic lives in leadops.nurture.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from leadops import nurture, progress
from leadops.clock import SimulatedClock, SystemClock, ensure_utc
from leadops.dispatch import DispatchReport
from leadops.settings import get_settings
from leadops.summary import summary_rows, touch_summary


def _run_name(prefix: str, key: str) -> str:
    value = flow_run.parameters.get(key)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    when = value.astimezone(UTC) if isinstance(value, datetime) else datetime.now(UTC)
    return f"{prefix}-{when:%Y-%m-%dT%H:%MZ}"


@task(name="plan", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def plan_task(runtime: nurture.Runtime, now: datetime) -> nurture.PlanReport:
    return nurture.plan_all(runtime, now)


@task(name="dispatch", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def dispatch_task(runtime: nurture.Runtime, now: datetime | None) -> DispatchReport:
    clock = SimulatedClock(now) if now is not None else SystemClock()
    return nurture.run_dispatch(runtime, clock)


@task(name="simulate-day", cache_policy=NO_CACHE)
def simulate_day_task(runtime: nurture.Runtime, start: datetime, end: datetime) -> int:
    return nurture.simulate(runtime, start, end).ticks


def _publish_summary(runtime: nurture.Runtime, key: str, description: str) -> None:
    rows = summary_rows(touch_summary(runtime.engine))
    create_table_artifact(key=key, table=rows, description=description)


@flow(name="nurture", flow_run_name=lambda: _run_name("nurture", "now"), log_prints=True)
def nurture_flow(now: datetime | None = None) -> dict[str, int]:
    """One tick: segment and plan every lead, dispatch what is due, publish a summary."""
    runtime = nurture.load_runtime(get_settings())
    tick_time = ensure_utc(now) if now is not None else SystemClock().now()
    plan = plan_task(runtime, tick_time)
    dispatch = dispatch_task(runtime, tick_time if now is not None else None)
    held = ", ".join(f"{reason}: {n}" for reason, n in sorted(dispatch.held.items())) or "none"
    create_markdown_artifact(
        key="nurture-tick",
        markdown=(
            f"# Nurture tick {tick_time:%Y-%m-%d %H:%M} UTC\n\n"
            f"- leads planned: {plan.leads}\n- newly enrolled: {sum(plan.enrolled.values())}\n"
            f"- touches created: {plan.planned}\n- sent: {dispatch.sent_total}\n"
            f"- held: {held}\n- failed: {dispatch.failed}\n- ambiguous: {dispatch.ambiguous}\n"
        ),
        description="What this tick did",
    )
    _publish_summary(runtime, "nurture-summary", "Touches per campaign, step and channel")
    return {
        "leads": plan.leads,
        "planned": plan.planned,
        "sent": dispatch.sent_total,
        "held": sum(dispatch.held.values()),
        "skipped": sum(dispatch.skipped.values()),
        "failed": dispatch.failed,
        "ambiguous": dispatch.ambiguous,
    }


@flow(name="simulate", flow_run_name=lambda: _run_name("simulate", "start"))
def simulate_flow(start: datetime, days: int = 30) -> dict[str, int]:
    """Run the nurture loop through `days` simulated days from `start`, day by day."""
    logger = get_run_logger()
    runtime = nurture.load_runtime(get_settings())
    start = ensure_utc(start)
    artifact = create_progress_artifact(progress=0.0, description=f"Simulating {days} days")
    ticks = 0
    for day in range(days):
        day_start = start + timedelta(days=day)
        ticks += simulate_day_task(runtime, day_start, day_start + timedelta(days=1))
        update_progress_artifact(
            artifact_id=artifact,  # type: ignore[arg-type]  # sync call returns the UUID
            progress=100.0 * (day + 1) / days,
        )
        progress.notify((day + 1) / days, f"day {day + 1} of {days}")
    logger.info("simulated %d days in %d ticks", days, ticks)
    _publish_summary(runtime, "simulation-summary", f"{days} simulated days from {start:%Y-%m-%d}")
    return {"days": days, "ticks": ticks}
