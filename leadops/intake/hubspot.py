"""Pull contacts from HubSpot's CRM search API into leads, resumably.

POST /crm/v3/objects/contacts/search, filtered on `lastmodifieddate GT <cursor>`, sorted
by `hs_object_id` ascending, `limit` up to 200, paged with `paging.next.after`. The search
API refuses to page past 10,000 results; before that, the read re-anchors: it adds the
filter `hs_object_id GT <last id read>` and starts paging again from the top.

The cursor (table `intake_cursors`) is written in the same transaction as each page's
leads, so a crash re-reads the page that was in flight and never skips one. A contact the
database refuses (a constraint, a value it cannot store) does not hold the page back: the
page is applied again one savepoint per contact, the refused one is quarantined
(`store_failed`, with its raw data) and the cursor moves past the page. A locked or lost
database fails the run instead, with the cursor where it was. A traversal
reads every contact modified after `since`; the next traversal starts from the time this
one began (minus `lag_seconds`, for the search index's delay), so contacts modified while
it ran are read again next time rather than missed. Re-read contacts merge by CRM id.
If the result set shrinks between pages (a contact deleted or merged in HubSpot), the
offsets have moved, so the read re-anchors on the last id stored instead of skipping one.

No echo of the write-back: our own writes (the `leadops_*` properties) bump a contact's
`lastmodifieddate`, so the contact comes back in the next search. Intake reads only the
properties its mapping names, and the mapping may not name a `leadops_*` property (the
config refuses it), so what we write can never be read in as lead data. Each contact's
mapped properties are digested (`crm_contacts.read_digest`, written with the page and
its cursor); a contact whose digest is what intake last read is counted `unchanged` and
not imported again, so a contact whose only change is our write-back is no change.

Untrusted boundary: HubSpot sets only the lead columns `properties` maps (and the CRM id);
everything is validated and mapped like any other source.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.core.db import session_scope
from leadops.core.settings import Settings
from leadops.intake.config import HubSpotSource, IntakeConfig
from leadops.intake.importer import ImportReport, import_in_savepoints
from leadops.intake.mapping import SourceRules
from leadops.intake.records import RawRecord
from leadops.models import CRM_CONTACTS, IntakeCursor
from leadops.providers.hubspot import HubSpotClient, HubSpotError, shared_limiter

__all__ = [
    "HubSpotClient",
    "HubSpotError",
    "contact_record",
    "hubspot_client",
    "pull_contacts",
    "search_body",
]

log = logging.getLogger("leadops.intake.hubspot")


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def contact_record(contact: dict[str, Any], config: HubSpotSource) -> RawRecord:
    """A HubSpot contact as a raw lead record (lead columns and CRM id, the values as
    HubSpot gives them: `lifecycle_stages` and `values` map them at import)."""
    properties = contact.get("properties") or {}
    data: dict[str, object] = {
        column: properties.get(name) for column, name in config.properties.items()
    }
    data["crm_id"] = str(contact.get("id", ""))
    if not data.get("source"):
        data["source"] = config.source
    return RawRecord(data=data, source_ref=f"hubspot:contact/{contact.get('id')}")


def contact_digest(contact: dict[str, Any], config: HubSpotSource) -> str:
    """A digest of the properties intake maps, as HubSpot gave them."""
    properties = contact.get("properties") or {}
    picked = {name: properties.get(name) for name in sorted(set(config.properties.values()))}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


def _changed_contacts(
    session: Session, results: list[dict[str, Any]], config: HubSpotSource, now: datetime
) -> list[dict[str, Any]]:
    """The contacts whose mapped properties differ from what intake last read; records
    the new digests (in the caller's transaction)."""
    digests = {str(c.get("id", "")): contact_digest(c, config) for c in results}
    found = session.connection().execute(
        sa.select(CRM_CONTACTS.c.crm_id, CRM_CONTACTS.c.read_digest).where(
            CRM_CONTACTS.c.crm == "hubspot", CRM_CONTACTS.c.crm_id.in_(list(digests))
        )
    )
    known = {row.crm_id: row.read_digest for row in found}
    changed = [
        c for c in results if known.get(str(c.get("id", ""))) != digests[str(c.get("id", ""))]
    ]
    rows = [
        {
            "crm": "hubspot",
            "crm_id": str(c.get("id", "")),
            "read_digest": digests[str(c.get("id", ""))],
            "read_at": now,
            "status": "idle",
            "attempts": 0,
        }
        for c in changed
    ]
    if rows:
        dialect = session.connection().dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(CRM_CONTACTS)
        session.connection().execute(
            insert.on_conflict_do_update(
                index_elements=["crm", "crm_id"],
                set_={
                    "read_digest": insert.excluded.read_digest,
                    "read_at": insert.excluded.read_at,
                },
            ),
            rows,
        )
    return changed


def search_body(
    config: HubSpotSource, since: int | None, anchor: str | None, after: int
) -> dict[str, Any]:
    """The search request: modified after `since`, ids after `anchor`, from offset `after`."""
    filters: list[dict[str, str]] = []
    if since is not None:
        filters.append({"propertyName": "lastmodifieddate", "operator": "GT", "value": str(since)})
    if anchor is not None:
        filters.append({"propertyName": "hs_object_id", "operator": "GT", "value": anchor})
    body: dict[str, Any] = {
        "filterGroups": [{"filters": filters}] if filters else [],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "properties": sorted({*config.properties.values(), "hs_object_id", "lastmodifieddate"}),
        "limit": config.page_size,
    }
    if after:
        body["after"] = str(after)
    return body


def load_cursor(session: Session, source: str) -> dict[str, Any]:
    row = session.get(IntakeCursor, source)
    return dict(row.state) if row is not None else {}


def _save_cursor(session: Session, source: str, state: dict[str, Any], now: datetime) -> None:
    row = session.get(IntakeCursor, source)
    if row is None:
        session.add(IntakeCursor(source=source, state=state, updated_at=now))
    else:
        row.state = state
        row.updated_at = now
        session.add(row)


def pull_contacts(
    engine: Engine,
    client: HubSpotClient,
    config: HubSpotSource,
    *,
    now: datetime,
    default_region: str,
    default_timezone: str,
    report: ImportReport | None = None,
    rules: SourceRules | None = None,
) -> ImportReport:
    """Read every contact modified since the stored cursor into leads, page by page, their
    values mapped by `rules` (default: the source's lifecycle_stages and values).

    Each page and the cursor after it commit together, and are added to `report` as they
    commit. Raises HubSpotError when HubSpot keeps failing, and the database's error when
    it is locked or unreachable; what was committed stays, and the next run resumes after
    it.
    """
    source = config.source
    rules = rules or SourceRules(config.value_mapping())
    with Session(engine) as session:
        state = load_cursor(session, source)
    if "next_since" not in state:  # start a new traversal
        state = {
            "since": state.get("since"),
            "next_since": _ms(now - timedelta(seconds=config.lag_seconds)),
            "after_id": None,
        }
    report = report if report is not None else ImportReport(source=source)
    anchor, after = state.get("after_id"), 0
    window_total: int | None = None
    while True:
        page = client.search(search_body(config, state.get("since"), anchor, after))
        total = page.get("total")
        if after and isinstance(total, int) and window_total is not None and total < window_total:
            # Contacts left the result set (deleted or merged in HubSpot) since the last
            # page, so offsets moved: read again from the last id stored instead.
            log.info("HubSpot result set shrank (%d -> %d); re-anchoring", window_total, total)
            anchor, after, window_total = state["after_id"], 0, None
            continue
        window_total = total if isinstance(total, int) else None
        results = page.get("results") or []
        next_after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if results:
            state["after_id"] = str(results[-1].get("id"))
        done = not results or next_after is None
        if done:
            state = {"since": state["next_since"]}
        part = ImportReport(source=source)
        with session_scope(engine) as session:
            _save_cursor(session, source, dict(state), now)
            changed = _changed_contacts(session, results, config, now) if results else []
            if changed:
                part = import_in_savepoints(
                    session,
                    [contact_record(contact, config) for contact in changed],
                    source=source,
                    now=now,
                    default_region=default_region,
                    default_timezone=default_timezone,
                    rules=rules,
                )
            part.unchanged = len(results) - len(changed)
        report.add(part)  # committed
        if done:
            log.info("HubSpot traversal done: %d read, cursor %s", report.read, state)
            return report
        after = int(str(next_after))
        if after + config.page_size > config.result_cap:
            anchor, after = state["after_id"], 0  # re-anchor: hs_object_id GT last id read
            window_total = None


def cursor_time(state: dict[str, Any]) -> datetime | None:
    """The `since` of a cursor state as a datetime (for display)."""
    since = state.get("since")
    return None if since is None else datetime.fromtimestamp(int(since) / 1000, tz=UTC)


def hubspot_client(settings: Settings, config: IntakeConfig) -> HubSpotClient:
    """The intake client, on the limiter the write-back shares."""
    if settings.hubspot_token is None:
        raise HubSpotError(
            "HubSpot is enabled in config/intake.yaml but LEADOPS_HUBSPOT_TOKEN is not set"
        )
    source = config.hubspot
    return HubSpotClient(
        base_url=settings.hubspot_base_url,
        token=settings.hubspot_token.get_secret_value(),
        requests_per_second=source.requests_per_second,
        max_attempts=source.max_attempts,
        timeout=source.timeout_seconds,
        limiter=shared_limiter(settings.hubspot_base_url, source.requests_per_second),
    )
