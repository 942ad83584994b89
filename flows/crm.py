"""The CRM flow: one HubSpot write-back pass (queue what changed, drain the contact outbox,
deals and tasks for new escalations). Every 5 minutes (prefect.yaml); does nothing unless
config/crm.yaml turns it on. All logic lives in leadops.crm.sync."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger

from flows.common import flow_settings, run_name
from leadops.core.clock import SystemClock, ensure_utc
from leadops.crm.sync import sync_crm
from leadops.runtime import build_runtime


@flow(name="crm", flow_run_name=lambda: run_name("crm", "now"), log_prints=True)
def crm_flow(now: datetime | None = None) -> dict[str, object]:
    """Run one pass; fails after recording when HubSpot refused or stayed down (what was
    confirmed stays written, the rest stays queued for the next run)."""
    runtime = build_runtime(flow_settings())
    at = ensure_utc(now) if now is not None else SystemClock().now()
    report = sync_crm(runtime.engine, runtime.settings, runtime.crm, now=at)
    result = report.as_dict()
    get_run_logger().info("CRM pass: %s", {k: v for k, v in result.items() if k != "errors"})
    if report.errors:
        raise RuntimeError("CRM pass had errors: " + "; ".join(report.errors[:5]))
    return result
