"""Read HubSpot deals back into `crm_deals`: the revenue truth.

POST /crm/v3/objects/deals/search on `hs_lastmodifieddate GT <cursor>` (intake cursor
`hubspot:deals`), sorted by `hs_object_id`, re-anchored on the last id read instead of
paging past the search cap. Each deal's contacts come from
POST /crm/v4/associations/deals/contacts/batch/read (`toObjectId`), and a contact's lead
is the lead with that CRM id. A deal's status comes from its stage: `deal_stages` in
config/intake.yaml first, else the pipeline's stage metadata (GET /crm/v3/pipelines/deals:
`isClosed` "true" with `probability` "1.0" is won, other closed stages lost).

Untrusted boundary: a deal sets only its own `crm_deals` row (stage, status, amount,
currency, owner, dates, name, lead link); never a lead, an escalation or a score. A deal
the write-back opened is matched by its `leadops_key`; a rep's own close of the
escalation stays as it is, and revenue counts `crm_deals`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from leadops.intake.config import HubSpotSource
from leadops.intake.hubspot import load_cursor
from leadops.models import CRM_DEALS, CRM_OWNERS, LEADS, IntakeCursor
from leadops.providers.hubspot import HubSpotClient

CURSOR = "hubspot:deals"
PROPERTIES = [
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "deal_currency_code",
    "closedate",
    "createdate",
    "hubspot_owner_id",
    "leadops_key",
    "hs_lastmodifieddate",
]


def stage_statuses(client: HubSpotClient, config: HubSpotSource) -> dict[str, str]:
    """Stage id -> open/won/lost, from the pipelines' metadata and `deal_stages`."""
    statuses: dict[str, str] = {}
    for pipeline in client.request("GET", "/crm/v3/pipelines/deals").get("results") or []:
        for stage in pipeline.get("stages") or []:
            meta = stage.get("metadata") or {}
            closed = str(meta.get("isClosed", "false")).lower() == "true"
            try:
                won = float(meta.get("probability", 0)) >= 1.0
            except (TypeError, ValueError):
                won = False
            statuses[str(stage["id"])] = ("won" if won else "lost") if closed else "open"
    return statuses | dict(config.deal_stages)


def _when(value: object) -> datetime | None:
    if not value:
        return None
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _cents(value: object) -> int | None:
    try:
        return None if value in (None, "") else int(Decimal(str(value)) * 100)
    except InvalidOperation:
        return None


def _contacts(client: HubSpotClient, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    answer = client.request(
        "POST",
        "/crm/v4/associations/deals/contacts/batch/read",
        {"inputs": [{"id": i} for i in ids]},
    )
    return {
        str(r["from"]["id"]): str(r["to"][0]["toObjectId"])
        for r in answer.get("results") or []
        if r.get("to")
    }


def _apply(
    connection: Connection,
    deals: list[dict[str, Any]],
    contacts: dict[str, str],
    statuses: dict[str, str],
    now: datetime,
) -> int:
    owners = {
        r[0]: r[1]
        for r in connection.execute(sa.select(CRM_OWNERS.c.owner_id, CRM_OWNERS.c.rep_key))
    }
    crm_ids = sorted(set(contacts.values()))
    leads = (
        {
            r[0]: r[1]
            for r in connection.execute(
                sa.select(LEADS.c.crm_id, sa.func.min(LEADS.c.id))
                .where(LEADS.c.crm_id.in_(crm_ids))
                .group_by(LEADS.c.crm_id)
            )
        }
        if crm_ids
        else {}
    )
    for deal in deals:
        p = deal.get("properties") or {}
        crm_id, key = str(deal["id"]), p.get("leadops_key") or None
        status = statuses.get(str(p.get("dealstage")), "open")
        values = {
            "name": (p.get("dealname") or "")[:300] or None,
            "pipeline": p.get("pipeline"),
            "stage": p.get("dealstage"),
            "status": status,
            "amount_cents": _cents(p.get("amount")),
            "currency": (p.get("deal_currency_code") or None),
            "owner_id": p.get("hubspot_owner_id") or None,
            "rep_key": owners.get(p.get("hubspot_owner_id") or ""),
            "opened_at": _when(p.get("createdate")),
            "closed_at": _when(p.get("closedate")) if status != "open" else None,
            "crm_modified_at": _when(p.get("hs_lastmodifieddate")),
            "updated_at": now,
        }
        lead = leads.get(contacts.get(crm_id, ""))
        if lead is not None:
            values["lead_id"] = lead
        match = (CRM_DEALS.c.crm == "hubspot") & (
            (CRM_DEALS.c.crm_id == crm_id) | (CRM_DEALS.c.leadops_key == key)
            if key
            else CRM_DEALS.c.crm_id == crm_id
        )
        found = connection.execute(sa.select(CRM_DEALS.c.id).where(match).limit(1)).scalar()
        if found is None:
            connection.execute(
                CRM_DEALS.insert().values(
                    crm="hubspot", crm_id=crm_id, leadops_key=key, created_at=now, **values
                )
            )
        else:
            connection.execute(
                CRM_DEALS.update().where(CRM_DEALS.c.id == found).values(crm_id=crm_id, **values)
            )
    return len(deals)


def pull_deals(
    engine: Engine, client: HubSpotClient, config: HubSpotSource, *, now: datetime
) -> int:
    """Read every deal modified since the cursor into crm_deals; the number read. Each
    page commits with its cursor, so a failure resumes after the last page stored."""
    with Session(engine) as session:
        state = load_cursor(session, CURSOR)
    if "next_since" not in state:
        next_since = int((now - timedelta(seconds=config.lag_seconds)).timestamp() * 1000)
        state = {"since": state.get("since"), "next_since": next_since, "after_id": None}
    statuses = stage_statuses(client, config)
    read = 0
    while True:
        filters = []
        if state.get("since") is not None:
            filters.append(
                {
                    "propertyName": "hs_lastmodifieddate",
                    "operator": "GT",
                    "value": str(state["since"]),
                }
            )
        if state.get("after_id"):
            filters.append(
                {"propertyName": "hs_object_id", "operator": "GT", "value": state["after_id"]}
            )
        page = client.search(
            {
                "filterGroups": [{"filters": filters}] if filters else [],
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": PROPERTIES,
                "limit": 100,
            },
            "deals",
        )
        results = page.get("results") or []
        contacts = _contacts(client, [str(d["id"]) for d in results])
        done = not results or not (page.get("paging") or {}).get("next")
        if results:
            state["after_id"] = str(results[-1]["id"])
        if done:
            state = {"since": state["next_since"]}
        with engine.begin() as connection:
            read += _apply(connection, results, contacts, statuses, now)
            _save(connection, state, now)
        if done:
            return read


def _save(connection: Connection, state: dict[str, Any], now: datetime) -> None:
    table = IntakeCursor.__table__  # type: ignore[attr-defined]
    updated = connection.execute(
        table.update().where(table.c.source == CURSOR).values(state=state, updated_at=now)
    )
    if updated.rowcount == 0:
        connection.execute(table.insert().values(source=CURSOR, state=state, updated_at=now))
