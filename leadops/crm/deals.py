"""A HubSpot deal, and a task for the rep's HubSpot owner, for each active escalation.

Idempotent by construction: the deal carries `leadops_key` = `<prefix>-esc-<escalation
id>`, a deal property with `hasUniqueValue` (made by `leadops crm setup`). Before
creating, the deal is read by that key (GET /crm/v3/objects/deals/<key>?idProperty=
leadops_key, which does not wait for the search index); a create HubSpot already applied
(a retry after a timeout or a 5xx) is refused with 409 on the unique value, and the deal is
read by its key again. The deal is recorded in `crm_deals` (leadops_key, crm_id,
escalation_id, lead_id) as soon as it is known.

A task has no unique property, so it is created once, without blind retries: before
creating, tasks associated with the deal are searched (`associations.deal`); a create whose
outcome is unknown is left for the next pass, which searches again. Its id goes to
`crm_deals.crm_task_id`. Association type ids (HubSpot-defined): deal to contact 3, task
to contact 204, task to deal 216.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from leadops.crm.config import CrmConfig
from leadops.models import CRM_DEALS, CRM_OWNERS, ESCALATIONS, LEADS, DealStatus
from leadops.providers.hubspot import HubSpotClient, HubSpotRefused, HubSpotUncertain

log = logging.getLogger("leadops.crm.deals")

ACTIVE = ("open", "acknowledged", "rerouted")
DEAL_TO_CONTACT = 3
TASK_TO_CONTACT = 204
TASK_TO_DEAL = 216


@dataclass
class DealReport:
    deals_created: int = 0
    deals_found: int = 0  # already in HubSpot (a retry or a re-run)
    tasks_created: int = 0
    tasks_found: int = 0
    errors: list[str] = field(default_factory=list)


def deal_key(config: CrmConfig, escalation_id: int) -> str:
    return f"{config.deals.key_prefix}-esc-{escalation_id}"


def _association(to: str, type_id: int) -> dict[str, Any]:
    return {
        "to": {"id": to},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    }


def find_deal(client: HubSpotClient, key: str) -> dict[str, Any] | None:
    try:
        return client.request(
            "GET",
            f"/crm/v3/objects/deals/{key}",
            params={"idProperty": "leadops_key", "properties": "dealstage,pipeline"},
        )
    except HubSpotRefused as exc:
        if exc.status == 404:
            return None
        raise


def ensure_deal(
    client: HubSpotClient, config: CrmConfig, row: Any, owner: str | None
) -> tuple[dict[str, Any], bool]:
    """The deal for an escalation row, created if HubSpot has none; (deal, created)."""
    key = deal_key(config, row.escalation_id)
    found = find_deal(client, key)
    if found is not None:
        return found, False
    name = row.company or " ".join(p for p in (row.first_name, row.last_name) if p) or row.email
    properties = {
        "dealname": f"{name} (leadops)",
        "pipeline": config.deals.pipeline,
        "dealstage": config.deals.stage,
        "leadops_key": key,
    }
    if owner:
        properties["hubspot_owner_id"] = owner
    body = {"properties": properties, "associations": [_association(row.crm_id, DEAL_TO_CONTACT)]}
    try:
        return client.request("POST", "/crm/v3/objects/deals", body), True
    except HubSpotRefused as exc:
        if exc.status != 409:
            raise
    found = find_deal(client, key)  # an earlier attempt made it
    if found is None:
        raise HubSpotRefused(f"HubSpot says deal {key} exists but it cannot be read", 409, None)
    return found, False


def _record_deal(
    engine: Engine,
    config: CrmConfig,
    row: Any,
    deal: dict[str, Any],
    owner: str | None,
    now: datetime,
) -> None:
    properties = deal.get("properties") or {}
    values = {
        "crm": "hubspot",
        "crm_id": str(deal["id"]),
        "leadops_key": deal_key(config, row.escalation_id),
        "lead_id": row.lead_id,
        "escalation_id": row.escalation_id,
        "pipeline": properties.get("pipeline") or config.deals.pipeline,
        "stage": properties.get("dealstage") or config.deals.stage,
        "status": DealStatus.OPEN,
        "owner_id": owner,
        "rep_key": row.rep_key,
        "opened_at": now,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as connection:
        insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
            CRM_DEALS
        )
        connection.execute(
            insert.values(**values).on_conflict_do_update(
                index_elements=["leadops_key"],
                set_={
                    "crm_id": values["crm_id"],
                    "escalation_id": row.escalation_id,
                    "updated_at": now,
                },
            )
        )


def _ensure_task(
    client: HubSpotClient, config: CrmConfig, deal: Any, now: datetime
) -> tuple[str, bool]:
    found = client.search(
        {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "associations.deal",
                            "operator": "EQ",
                            "value": deal.crm_id,
                        }
                    ]
                }
            ],
            "properties": ["hs_task_subject"],
            "limit": 1,
        },
        "tasks",
    )
    if found.get("results"):
        return str(found["results"][0]["id"]), False
    due = now + timedelta(hours=config.deals.task_due_hours)
    body = {
        "properties": {
            "hs_timestamp": due.isoformat().replace("+00:00", "Z"),
            "hs_task_subject": f"Follow up: {deal.name or 'sales-ready lead'}",
            "hs_task_body": f"Escalated by leadops ({deal.leadops_key}).",
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": "HIGH",
            "hubspot_owner_id": deal.owner_id,
        },
        "associations": [
            _association(deal.crm_id, TASK_TO_DEAL),
            _association(deal.contact_id, TASK_TO_CONTACT),
        ],
    }
    task = client.request("POST", "/crm/v3/objects/tasks", body, idempotent=False)
    return str(task["id"]), True


def _without_deal(engine: Engine, config: CrmConfig) -> list[Any]:
    with engine.connect() as connection:
        has_deal = sa.exists().where(
            CRM_DEALS.c.escalation_id == ESCALATIONS.c.id, CRM_DEALS.c.crm_id.is_not(None)
        )
        return list(
            connection.execute(
                sa.select(
                    ESCALATIONS.c.id.label("escalation_id"),
                    ESCALATIONS.c.lead_id,
                    ESCALATIONS.c.rep_key,
                    LEADS.c.crm_id,
                    LEADS.c.company,
                    LEADS.c.first_name,
                    LEADS.c.last_name,
                    LEADS.c.email,
                )
                .join(LEADS, LEADS.c.id == ESCALATIONS.c.lead_id)
                .where(
                    ESCALATIONS.c.status.in_(ACTIVE),
                    LEADS.c.crm_id.is_not(None),
                    LEADS.c.crm_id != "",
                    ~has_deal,
                )
                .order_by(ESCALATIONS.c.id)
            )
        )


def _without_task(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(
                    CRM_DEALS.c.id,
                    CRM_DEALS.c.crm_id,
                    CRM_DEALS.c.leadops_key,
                    CRM_DEALS.c.owner_id,
                    LEADS.c.crm_id.label("contact_id"),
                    sa.func.coalesce(LEADS.c.company, LEADS.c.email).label("name"),
                )
                .join(ESCALATIONS, ESCALATIONS.c.id == CRM_DEALS.c.escalation_id)
                .join(LEADS, LEADS.c.id == CRM_DEALS.c.lead_id)
                .where(
                    ESCALATIONS.c.status.in_(ACTIVE),
                    CRM_DEALS.c.crm_task_id.is_(None),
                    CRM_DEALS.c.owner_id.is_not(None),
                    CRM_DEALS.c.crm_id.is_not(None),
                )
                .order_by(CRM_DEALS.c.id)
            )
        )


def open_deals(
    engine: Engine, client: HubSpotClient, config: CrmConfig, *, now: datetime
) -> DealReport:
    """Make (or find) the deal of every active escalation of a lead with a CRM id, then
    the rep's task for each deal with an owner. A refused escalation is reported and the
    rest go on; an outage ends the pass (the next one carries on)."""
    report = DealReport()
    with engine.connect() as connection:
        owners = {
            r[0]: r[1]
            for r in connection.execute(sa.select(CRM_OWNERS.c.rep_key, CRM_OWNERS.c.owner_id))
        }
    for row in _without_deal(engine, config):
        owner = owners.get(row.rep_key) if row.rep_key else None
        try:
            deal, created = ensure_deal(client, config, row, owner)
        except HubSpotRefused as exc:
            report.errors.append(f"escalation {row.escalation_id}: {exc}")
            continue
        except HubSpotUncertain as exc:  # pragma: no cover - creates retry as idempotent
            report.errors.append(str(exc))
            return report
        _record_deal(engine, config, row, deal, owner, now)
        report.deals_created += created
        report.deals_found += not created
    if not config.deals.task:
        return report
    for deal in _without_task(engine):
        try:
            task_id, created = _ensure_task(client, config, deal, now)
        except HubSpotUncertain as exc:
            report.errors.append(f"task for deal {deal.crm_id} (searched again next pass): {exc}")
            continue
        except HubSpotRefused as exc:
            report.errors.append(f"task for deal {deal.crm_id}: {exc}")
            continue
        with engine.begin() as connection:
            connection.execute(
                CRM_DEALS.update()
                .where(CRM_DEALS.c.id == deal.id)
                .values(crm_task_id=task_id, updated_at=now)
            )
        report.tasks_created += created
        report.tasks_found += not created
    return report
