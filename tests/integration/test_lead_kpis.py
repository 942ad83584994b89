"""Two lead KPIs on small hand-built data: leads never followed up (apart from those no
channel can reach) and nurture conversion (of leads nurtured from below SQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.models import LEAD_SOURCE_RECORDS, LEADS, STAGE_CHANGES
from leadops.reporting import lead_kpis
from leadops.reporting.kpi_figures import KpiReport
from tests.integration.test_report import NOW, World

DAY = timedelta(days=1)


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)


def _set(world: World, lead_id: int, **values: object) -> None:
    with world.engine.begin() as conn:
        conn.execute(sa.update(LEADS).where(LEADS.c.id == lead_id).values(values))


def _report(world: World) -> KpiReport:
    report = KpiReport(now=NOW)
    with world.engine.connect() as conn:
        lead_kpis.never_followed_up(conn, NOW, report)
        lead_kpis.nurture_conversion(conn, report)
    return report


def test_leads_no_channel_can_reach_are_not_counted_as_never_followed_up(world: World) -> None:
    old = NOW - 3 * DAY
    world.lead("lead", old)  # email with consent: reachable, never followed up
    world.lead("mql", old, phone="+447700900123")  # reachable both ways
    no_consent = world.lead("lead", old, phone="+447700900124")
    _set(world, no_consent, email_consent=False, whatsapp_consent=False)
    no_address = world.lead("lead", old)
    _set(world, no_address, email=None)
    suppressed = world.lead("mql", old, phone="+447700900125")
    _set(world, suppressed, email_suppressed_at=old, whatsapp_suppressed_at=old)
    one_left = world.lead("mql", old, phone="+447700900126")  # WhatsApp still reaches it
    _set(world, one_left, email_suppressed_at=old)
    sent = world.lead("lead", old)  # followed up: neither
    world.touch(sent, "day-1", "sent", due=old, sent=old)
    unreachable_sent = world.lead("lead", old)  # followed up before it was suppressed
    world.touch(unreachable_sent, "day-1", "sent", due=old, sent=old)
    _set(world, unreachable_sent, email_suppressed_at=NOW - DAY)
    world.lead("lead", NOW - 3 * timedelta(hours=1))  # too new to count either way
    gone = world.lead("lead", old)  # unsubscribed: counted as unsubscribed instead
    _set(world, gone, unsubscribed_at=old, email_suppressed_at=old)

    report = _report(world)
    # by hand: reachable and never sent: the first two, and one_left
    assert report.never_followed_up == 3
    assert report.never_followed_up_by_stage == {"lead": 1, "mql": 2}
    # no consent, no address, suppressed on both channels
    assert report.uncontactable == 3


def test_nurture_conversion_counts_leads_nurtured_from_below_sql(world: World) -> None:
    created = NOW - 20 * DAY
    first = NOW - 19 * DAY

    def nurtured(stage: str) -> int:
        lead_id = world.lead(stage, created)
        world.touch(lead_id, "day-1", "sent", due=first, sent=first)
        return lead_id

    scored_up = nurtured("sql")  # a lead at first send, scored to SQL later
    imported_sql = nurtured("sql")  # created at SQL: not nurtured to it
    imported_customer = nurtured("opportunity")  # imported beyond SQL: not counted
    nurtured("mql")  # nurtured from MQL, not at SQL yet
    was_mql = nurtured("mql")  # moved to MQL before its first message, SQL after
    crm_sql = nurtured("sql")  # created as a lead (its source record), moved by the CRM
    world.lead("lead", created)  # never messaged: not nurtured
    with world.engine.begin() as conn:
        conn.execute(
            STAGE_CHANGES.insert(),
            [
                {
                    "lead_id": scored_up,
                    "from_stage": "lead",
                    "to_stage": "mql",
                    "score": 45,
                    "reason": "r",
                    "changed_at": NOW - 10 * DAY,
                },
                {
                    "lead_id": scored_up,
                    "from_stage": "mql",
                    "to_stage": "sql",
                    "score": 85,
                    "reason": "r",
                    "changed_at": NOW - 5 * DAY,
                },
                {
                    "lead_id": was_mql,
                    "from_stage": "lead",
                    "to_stage": "mql",
                    "score": 45,
                    "reason": "r",
                    "changed_at": NOW - 19 * DAY - timedelta(hours=1),
                },
                {
                    "lead_id": was_mql,
                    "from_stage": "mql",
                    "to_stage": "sql",
                    "score": 85,
                    "reason": "r",
                    "changed_at": NOW - 2 * DAY,
                },
            ],
        )
        conn.execute(
            LEAD_SOURCE_RECORDS.insert(),
            [
                {
                    "lead_id": lead_id,
                    "source": "csv",
                    "action": "created",
                    "data": {"lifecycle_stage": stage},
                    "received_at": created,
                }
                for lead_id, stage in (
                    (imported_sql, "sql"),
                    (imported_customer, "opportunity"),
                    (crm_sql, "lead"),
                )
            ],
        )
    report = _report(world)
    # by hand: nurtured from below SQL: scored_up (lead), the MQL one (its stage now),
    # was_mql (mql before its first message), crm_sql (created as a lead) = 4; of them
    # scored_up, was_mql and crm_sql reached SQL = 3
    assert (report.nurtured, report.nurture_converted) == (4, 3)
    assert report.nurture_conversion == 0.75
