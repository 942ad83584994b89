"""`leadops crm setup`: the custom properties the write-back needs, and reps matched to
HubSpot owners.

- POST /crm/v3/properties/contacts/groups (the `leadops` group) and
  POST /crm/v3/properties/contacts for each `leadops_*` property; 409 means it exists.
- POST /crm/v3/properties/deals for `leadops_key` with `hasUniqueValue: true`, so HubSpot
  itself refuses a second deal with the same key.
- GET /crm/v3/owners (paged, `limit` up to 100, `paging.next.after`): each owner's `id` is
  the owner id deals and tasks are assigned to; reps are matched by email, ignoring case.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.crm.values import CONTACT_PROPERTIES, DEAL_KEY_PROPERTY, GROUP
from leadops.models import CRM_OWNERS
from leadops.providers.hubspot import HubSpotClient, HubSpotRefused


@dataclass
class SetupLine:
    object_type: str  # contacts, deals, owners
    name: str
    result: str  # created, exists, matched, unmatched


def _create(client: HubSpotClient, path: str, body: dict[str, Any]) -> str:
    try:
        client.request("POST", path, body)
    except HubSpotRefused as exc:
        if exc.status == 409:
            return "exists"
        raise
    return "created"


def ensure_properties(client: HubSpotClient) -> list[SetupLine]:
    """Create the property group and every property the write-back writes, if missing."""
    lines = [
        SetupLine(
            "contacts",
            f"group {GROUP}",
            _create(
                client,
                "/crm/v3/properties/contacts/groups",
                {"name": GROUP, "label": "leadops", "displayOrder": -1},
            ),
        )
    ]
    for name, (label, kind, field_type) in CONTACT_PROPERTIES.items():
        body = {
            "name": name,
            "label": label,
            "type": kind,
            "fieldType": field_type,
            "groupName": GROUP,
            "description": "Written by leadops; edits in HubSpot are overwritten.",
        }
        lines.append(
            SetupLine("contacts", name, _create(client, "/crm/v3/properties/contacts", body))
        )
    deal_key = {
        "name": DEAL_KEY_PROPERTY,
        "label": "leadops key",
        "type": "string",
        "fieldType": "text",
        "groupName": "dealinformation",
        "hasUniqueValue": True,
        "description": "The leadops escalation this deal was opened for (unique).",
    }
    lines.append(
        SetupLine("deals", DEAL_KEY_PROPERTY, _create(client, "/crm/v3/properties/deals", deal_key))
    )
    return lines


def list_owners(client: HubSpotClient) -> list[dict[str, object]]:
    owners: list[dict[str, object]] = []
    after: str | None = None
    while True:
        params = {"limit": "100", **({"after": after} if after else {})}
        page = client.request("GET", "/crm/v3/owners", params=params)
        owners.extend(page.get("results") or [])
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return owners


def match_owners(
    engine: Engine,
    client: HubSpotClient,
    reps: Iterable[tuple[str, str | None]],
    *,
    now: datetime,
) -> list[SetupLine]:
    """Match reps (key, email) to HubSpot owners by email and store the matches."""
    by_email = {
        str(o.get("email") or "").strip().lower(): str(o["id"])
        for o in list_owners(client)
        if o.get("email") and not o.get("archived")
    }
    lines: list[SetupLine] = []
    rows: list[dict[str, object]] = []
    for key, email in reps:
        owner = by_email.get((email or "").strip().lower())
        lines.append(SetupLine("owners", key, f"matched {owner}" if owner else "unmatched"))
        if owner and email:
            rows.append(
                {
                    "rep_key": key,
                    "crm": "hubspot",
                    "owner_id": owner,
                    "email": email,
                    "matched_at": now,
                }
            )
    with engine.begin() as connection:
        connection.execute(CRM_OWNERS.delete())
        if rows:
            connection.execute(sa.insert(CRM_OWNERS), rows)
    return lines
