"""The intake flow: pull every configured lead source and publish the run's report.

Scheduled every 15 minutes (prefect.yaml). All logic lives in leadops.intake.run.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.common import RETRIES, RETRY_DELAYS, flow_settings, retry_if_transient, run_name
from leadops.core.clock import SystemClock, ensure_utc
from leadops.intake.run import (
    IntakeRun,
    SourceResult,
    import_drop_folder,
    pull_hubspot,
    retry_form_confirmations,
)
from leadops.runtime import Runtime, build_runtime


@task(
    name="csv-drop-folder",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def csv_task(runtime: Runtime, now: datetime) -> list[SourceResult]:
    return import_drop_folder(runtime.engine, runtime.settings, runtime.intake, now=now)


@task(
    name="hubspot",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def hubspot_task(runtime: Runtime, now: datetime) -> list[SourceResult]:
    return pull_hubspot(runtime.engine, runtime.settings, runtime.intake, now=now)


@task(
    name="form-confirmations",
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def confirmations_task(runtime: Runtime, now: datetime) -> list[SourceResult]:
    return retry_form_confirmations(
        runtime.engine, runtime.settings, runtime.intake, now=now, email=runtime.email
    )


@flow(name="intake", flow_run_name=lambda: run_name("intake", "now"), log_prints=True)
def intake_flow(now: datetime | None = None) -> dict[str, object]:
    """Pull the CSV drop folder and HubSpot (when enabled), retry unsent form
    confirmations; publish read, created, merged, quarantined (by reason) and flagged per
    source. A file quarantined as a file is a warning, not a failure (the other files were
    read). Fails when a source failed, after publishing."""
    runtime = build_runtime(flow_settings())
    _ = runtime.engine, runtime.intake  # a broken database or config fails the run up front
    at = ensure_utc(now) if now is not None else SystemClock().now()
    run = IntakeRun(
        now=at,
        results=[
            *csv_task(runtime, at),
            *hubspot_task(runtime, at),
            *confirmations_task(runtime, at),
        ],
    )
    create_markdown_artifact(key="intake-run", markdown=run.markdown(), description="Intake run")
    if run.results:
        create_table_artifact(
            key="intake-sources", table=run.rows(), description="Intake per source"
        )
    totals = run.totals()
    logger = get_run_logger()
    for held in run.quarantined_files:  # the run goes on; an operator fixes and releases
        logger.warning("%s", held.file_line)
    logger.info("intake: %s", totals)
    if run.errors:
        raise RuntimeError(
            "intake source(s) failed: " + "; ".join(f"{r.source}: {r.error}" for r in run.errors)
        )
    return totals
