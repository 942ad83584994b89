"""One CRM pass (`leadops crm sync`, the `crm` flow): queue what changed, drain the
contact outbox, then the deals and tasks of new escalations. Off unless config/crm.yaml
turns it on; one pass at a time (a database run lock)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.locks import run_lock
from leadops.core.settings import Settings
from leadops.crm.config import CrmConfig
from leadops.crm.deals import open_deals
from leadops.crm.values import queue_changes
from leadops.crm.writeback import drain
from leadops.models import CRM_CONTACTS, CRM_DEALS
from leadops.providers.hubspot import HubSpotClient, HubSpotError, shared_limiter

log = logging.getLogger("leadops.crm")


@dataclass
class SyncReport:
    enabled: bool = True
    queued: int = 0
    unchanged: int = 0
    batches: int = 0
    written: int = 0
    failed: int = 0
    deferred: int = 0
    deals_created: int = 0
    deals_found: int = 0
    tasks_created: int = 0
    tasks_found: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def crm_client(settings: Settings, config: CrmConfig) -> HubSpotClient:
    """A client on the limiter intake shares (one per HubSpot account)."""
    if settings.hubspot_token is None:
        raise HubSpotError(
            "the CRM write-back is enabled in config/crm.yaml but LEADOPS_HUBSPOT_TOKEN is not set"
        )
    return HubSpotClient(
        base_url=settings.hubspot_base_url,
        token=settings.hubspot_token.get_secret_value(),
        requests_per_second=config.requests_per_second,
        max_attempts=config.max_attempts,
        timeout=config.timeout_seconds,
        limiter=shared_limiter(settings.hubspot_base_url, config.requests_per_second),
    )


def sync_crm(
    engine: Engine,
    settings: Settings,
    config: CrmConfig,
    *,
    now: datetime,
    client: HubSpotClient | None = None,
) -> SyncReport:
    """One pass; HubSpot failures end up in `errors` (what was confirmed stays recorded)."""
    if not config.enabled:
        return SyncReport(enabled=False)
    report = SyncReport()
    client = client or crm_client(settings, config)
    with run_lock(engine, "crm-sync"):
        if config.writeback.enabled:
            with engine.begin() as connection:
                queued = queue_changes(connection, now=now)
            report.queued, report.unchanged = queued.queued, queued.unchanged
            drained = drain(engine, client, config, now=now)
            report.batches, report.written = drained.batches, drained.written
            report.failed, report.deferred = drained.failed, drained.deferred
            report.errors += drained.errors
        if config.deals.enabled and not report.deferred:
            try:
                deals = open_deals(engine, client, config, now=now)
            except HubSpotError as exc:
                report.errors.append(str(exc))
            else:
                report.deals_created, report.deals_found = deals.deals_created, deals.deals_found
                report.tasks_created, report.tasks_found = deals.tasks_created, deals.tasks_found
                report.errors += deals.errors
    log.info("CRM pass: %s", report.as_dict())
    return report


def crm_status(engine: Engine) -> dict[str, Any]:
    """Outbox counts (pending, due later, failed, written), deals, and the last error."""
    c = CRM_CONTACTS.c
    with engine.connect() as connection:
        counts = {
            r[0]: r[1]
            for r in connection.execute(sa.select(c.status, sa.func.count()).group_by(c.status))
        }
        written = connection.execute(
            sa.select(sa.func.count()).where(c.written_at.is_not(None))
        ).scalar_one()
        retrying = connection.execute(
            sa.select(sa.func.count()).where(c.status == "pending", c.attempts > 0)
        ).scalar_one()
        last = connection.execute(
            sa.select(c.crm_id, c.last_error, c.not_before)
            .where(c.last_error.is_not(None))
            .order_by(c.not_before.desc().nulls_last(), c.id.desc())
            .limit(1)
        ).first()
        deals = {
            r[0]: r[1]
            for r in connection.execute(
                sa.select(CRM_DEALS.c.status, sa.func.count()).group_by(CRM_DEALS.c.status)
            )
        }
    return {
        "pending": int(counts.get("pending", 0)),
        "retrying": int(retrying),
        "failed": int(counts.get("failed", 0)),
        "written": int(written),
        "deals": {k: int(v) for k, v in deals.items()},
        "last_error": None if last is None else f"contact {last.crm_id}: {last.last_error}",
    }
