"""The HubSpot write-back against the local fake: each contact update sent once, through
429s, 500s and hangs; no echo into intake; one deal and one task per escalation; won deals
read back into crm_deals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import Engine

from leadops.core.settings import Settings
from leadops.crm.config import CrmConfig, DealsConfig, WritebackConfig
from leadops.crm.setup import ensure_properties, match_owners
from leadops.crm.sync import crm_status, sync_crm
from leadops.intake.config import HubSpotSource
from leadops.intake.hubspot import pull_contacts
from leadops.intake.hubspot_deals import pull_deals
from leadops.models import CRM_CONTACTS, CRM_DEALS, LEADS
from leadops.providers.hubspot import HubSpotClient
from leadops.testing.hubspot import FakeHubSpot

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BATCH = "/crm/v3/objects/contacts/batch/update"


def _client(httpserver: HTTPServer, sleeps: list[float], **options: Any) -> HubSpotClient:
    return HubSpotClient(
        base_url=httpserver.url_for("/"),
        token="test-token",
        requests_per_second=1000.0,
        sleep=sleeps.append,
        timeout=options.pop("timeout", 0.5),
        max_attempts=options.pop("max_attempts", 4),
    )


def _fake(httpserver: HTTPServer, n: int) -> FakeHubSpot:
    # HubSpot's clock runs an hour ahead of the test's `now`: writes land after cursors.
    fake = FakeHubSpot(hang_seconds=0.6, clock_ms=int(NOW.timestamp() * 1000) + 3_600_000)
    for i in range(1, n + 1):
        fake.add_contact(
            str(i), email=f"c{i}@example.com", firstname=f"F{i}", company=f"Co {i}",
            lifecyclestage="lead",
        )  # fmt: skip
    fake.serve(httpserver)
    ensure_properties(_client(httpserver, []))
    return fake


def _import(engine: Engine, client: HubSpotClient, now: datetime) -> Any:
    return pull_contacts(
        engine, client, HubSpotSource(enabled=True, lag_seconds=0), now=now,
        default_region="US", default_timezone="UTC",
    )  # fmt: skip


def _sync(
    engine: Engine, settings: Settings, client: HubSpotClient, config: CrmConfig, now: datetime
) -> Any:
    return sync_crm(engine, settings, config, now=now, client=client)


WRITEBACK = CrmConfig(writeback=WritebackConfig(enabled=True))


def test_each_contact_update_is_sent_once_through_429_500_and_hangs_and_not_echoed(
    engine: Engine, httpserver: HTTPServer, settings: Settings
) -> None:
    fake = _fake(httpserver, 250)
    sleeps: list[float] = []
    client = _client(httpserver, sleeps)
    assert _import(engine, client, NOW).created == 250
    with engine.begin() as connection:
        connection.execute(LEADS.update().values(score=LEADS.c.id, grade="B2", band="warm"))

    fake.fail(BATCH, "429", "500", "hang")
    report = _sync(engine, settings, client, WRITEBACK, NOW)
    assert (report.queued, report.batches, report.written, report.errors) == (250, 3, 250, [])
    assert all(len(body["inputs"]) <= 100 for m, p, body in fake.log if p == BATCH)
    assert set(fake.updates) == {str(i) for i in range(1, 251)}
    assert set(fake.updates.values()) == {1}  # each contact once, faults or not
    assert 1.0 in sleeps  # Retry-After honoured
    contact = fake.contacts["7"]
    assert contact["leadops_score"] == "7" and contact["leadops_grade"] == "B2"
    assert contact["leadops_band"] == "warm" and contact["leadops_stage"] == "lead"

    # Nothing changed: nothing sent. One lead changes: one contact, once.
    sent = sum(1 for _, p, _ in fake.log if p == BATCH)
    again = _sync(engine, settings, client, WRITEBACK, NOW + timedelta(minutes=5))
    assert (again.queued, again.batches) == (0, 0)
    with engine.begin() as connection:
        connection.execute(LEADS.update().where(LEADS.c.crm_id == "9").values(band="hot"))
    changed = _sync(engine, settings, client, WRITEBACK, NOW + timedelta(minutes=10))
    assert (changed.queued, changed.written) == (1, 1)
    assert sum(1 for _, p, _ in fake.log if p == BATCH) == sent + 1
    assert fake.updates["9"] == 2 and fake.contacts["9"]["leadops_band"] == "hot"

    # Our writes bumped every contact's lastmodifieddate; intake counts them unchanged.
    searches = len([1 for _, p, _ in fake.log if p.endswith("/contacts/search")])
    echo = _import(engine, client, NOW + timedelta(minutes=15))
    assert (echo.created, echo.merged, echo.unchanged) == (0, 0, 250)
    bodies = [b for _, p, b in fake.log if p.endswith("/contacts/search")][searches:]
    assert bodies and not any(n.startswith("leadops_") for b in bodies for n in b["properties"])


def test_an_outage_keeps_updates_queued_and_a_refused_contact_does_not_hold_the_rest(
    engine: Engine, httpserver: HTTPServer, settings: Settings
) -> None:
    fake = _fake(httpserver, 120)
    client = _client(httpserver, [], max_attempts=2)
    _import(engine, client, NOW)
    fake.fail(BATCH, "500", "500")
    down = _sync(engine, settings, client, WRITEBACK, NOW)
    assert (down.written, down.deferred) == (0, 100) and "failed 2 times" in down.errors[0]
    status = crm_status(engine)
    assert (status["pending"], status["retrying"], status["written"]) == (120, 100, 0)
    assert "HTTP 500" in status["last_error"]
    assert not fake.updates

    del fake.contacts["5"]  # merged away in HubSpot meanwhile
    early = _sync(engine, settings, client, WRITEBACK, NOW + timedelta(minutes=1))
    assert early.written == 20  # the deferred 100 wait for their not_before
    later = _sync(engine, settings, client, WRITEBACK, NOW + timedelta(minutes=6))
    assert (later.written, later.failed) == (99, 1)
    assert set(fake.updates.values()) == {1} and len(fake.updates) == 119
    status = crm_status(engine)
    assert (status["pending"], status["failed"], status["written"]) == (0, 1, 119)
    with engine.connect() as connection:
        failed = connection.execute(
            sa.select(CRM_CONTACTS.c.crm_id).where(CRM_CONTACTS.c.status == "failed")
        ).scalar_one()
    assert failed == "5"


def _escalate(engine: Engine, crm_ids: list[str], rep: str) -> None:
    with engine.begin() as connection:
        leads = connection.execute(
            sa.select(LEADS.c.id).where(LEADS.c.crm_id.in_(crm_ids)).order_by(LEADS.c.id)
        ).scalars()
        for lead in leads:
            connection.execute(
                sa.text(
                    "INSERT INTO escalations (lead_id, trigger, trigger_key, score, reasons, "
                    "status, rep_key, reroutes, created_at, updated_at) VALUES (:lead, 'sql', "
                    "'k', 80, '[]', 'open', :rep, 0, :t, :t)"
                ),
                {"lead": lead, "rep": rep, "t": NOW},
            )


def test_one_deal_and_one_task_per_escalation_through_retries_and_won_deals_come_back(
    engine: Engine, httpserver: HTTPServer, settings: Settings
) -> None:
    fake = _fake(httpserver, 5)
    assert all(line.result == "exists" for line in ensure_properties(_client(httpserver, [])))
    assert fake.properties["deals"]["leadops_key"]["hasUniqueValue"] is True
    client = _client(httpserver, [])
    _import(engine, client, NOW)
    fake.owners = [{"id": "501", "email": "Ann@Example.com", "archived": False}]
    lines = match_owners(engine, client, [("ann", "ann@example.com"), ("bob", None)], now=NOW)
    assert [line.result for line in lines] == ["matched 501", "unmatched"]
    _escalate(engine, ["1", "2", "3"], "ann")
    config = CrmConfig(deals=DealsConfig(enabled=True))

    # A create applied but answered 500, a 429 and a hang: still one deal and one task each.
    fake.fail("/crm/v3/objects/deals", "applied-500", "429")
    fake.fail("/crm/v3/objects/tasks", "applied-500", "hang")
    first = _sync(engine, settings, client, config, NOW)
    assert len(fake.deals) == 3 and first.deals_created + first.deals_found == 3
    second = _sync(engine, settings, client, config, NOW + timedelta(minutes=5))
    third = _sync(engine, settings, client, config, NOW + timedelta(minutes=10))
    assert len(fake.deals) == 3 and len(fake.tasks) == 3, (first, second, third)
    assert third.deals_created == third.tasks_created == 0
    assert {d["leadops_key"] for d in fake.deals.values()} == {
        f"leadops-esc-{i}" for i in (1, 2, 3)
    }
    assert {d["hubspot_owner_id"] for d in fake.deals.values()} == {"501"}
    assert sorted(c for cs in fake.deal_contacts.values() for c in cs) == ["1", "2", "3"]
    with engine.connect() as connection:
        deals = connection.execute(sa.select(CRM_DEALS).order_by(CRM_DEALS.c.id)).all()
    assert [d.escalation_id for d in deals] == [1, 2, 3]
    assert all(d.crm_id in fake.deals for d in deals), (deals, fake.deals)
    assert all(d.crm_task_id in fake.tasks for d in deals), (deals, fake.tasks)

    # Won in HubSpot: intake reads it back into crm_deals (CRM truth).
    won = deals[0].crm_id
    fake.move_deal(won, "closedwon", "12500.50", "2026-12-01T15:00:00.000Z")
    hubspot = HubSpotSource(enabled=True, deals=True, lag_seconds=0)
    assert pull_deals(engine, client, hubspot, now=NOW + timedelta(hours=4)) == 3
    assert pull_deals(engine, client, hubspot, now=NOW + timedelta(hours=5)) == 0
    with engine.connect() as connection:
        row = connection.execute(sa.select(CRM_DEALS).where(CRM_DEALS.c.crm_id == won)).one()
        count = connection.execute(sa.select(sa.func.count()).select_from(CRM_DEALS)).scalar()
    assert (row.status, row.amount_cents, row.currency) == ("won", 1_250_050, "EUR")
    assert row.closed_at == datetime(2026, 12, 1, 15, tzinfo=UTC) and row.rep_key == "ann"
    assert row.lead_id == deals[0].lead_id and row.leadops_key == "leadops-esc-1"
    assert count == 3
