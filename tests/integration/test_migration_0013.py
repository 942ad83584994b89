"""Migration 0013 (suppression reason codes) on a database the first wave's dispatcher
left: free provider text as a suppression reason, and pending touches on that channel."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.core.db import current_revision, downgrade, head_revision, upgrade
from leadops.delivery.suppression import opt_in
from leadops.models import CAMPAIGN_VERSIONS, ENROLLMENTS, LEADS, TOUCHES

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
BEFORE = "0012"  # the revision 0013 follows


def _lead(connection: Connection, email: str, **suppression: object) -> int:
    lead = connection.execute(
        LEADS.insert().values(
            email=email, phone="+14155550100", created_at=T0, updated_at=T0, **suppression
        )
    ).inserted_primary_key[0]
    version = connection.execute(
        CAMPAIGN_VERSIONS.insert().values(
            campaign=f"c-{lead}", version=1, checksum="c" * 64, definition={}, created_at=T0
        )
    ).inserted_primary_key[0]
    enrollment = connection.execute(
        ENROLLMENTS.insert().values(
            lead_id=lead, campaign=f"c-{lead}", campaign_version_id=version, started_at=T0
        )
    ).inserted_primary_key[0]
    for channel in ("email", "whatsapp"):
        connection.execute(
            TOUCHES.insert().values(
                lead_id=lead,
                enrollment_id=enrollment,
                campaign=f"c-{lead}",
                campaign_version_id=version,
                step="day-10",
                step_day=10,
                channel=channel,
                status="pending",
                due_at=T0,
                not_before=T0,
                created_at=T0,
                updated_at=T0,
            )
        )
    return int(lead)


def _state(connection: Connection, lead: int) -> tuple[object, ...]:
    row = connection.execute(
        sa.select(LEADS.c.email_suppression_reason, LEADS.c.whatsapp_suppression_reason).where(
            LEADS.c.id == lead
        )
    ).one()
    touches = dict(
        connection.execute(
            sa.select(
                TOUCHES.c.channel, sa.func.coalesce(TOUCHES.c.hold_reason, TOUCHES.c.status)
            ).where(TOUCHES.c.lead_id == lead)
        ).all()
    )
    return (*row, touches["email"], touches["whatsapp"])


def test_free_text_reasons_become_codes_and_their_pending_touches_are_skipped(
    engine: Engine,
) -> None:
    downgrade(engine, BEFORE)
    with engine.begin() as connection:
        refused = _lead(
            connection,
            "gone@example.com",
            email_suppressed_at=T0,
            email_suppression_reason="SendGrid 400: The email address is not valid",
        )
        number = _lead(
            connection,
            "ok@example.com",
            whatsapp_suppressed_at=T0,
            whatsapp_suppression_reason="Twilio 21211: Invalid 'To' Phone Number",
        )
        unsubscribed = _lead(
            connection,
            "stop@example.com",
            email_suppressed_at=T0,
            email_suppression_reason="unsubscribe",
        )
        clean = _lead(connection, "fine@example.com")

    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.begin() as connection:
        assert _state(connection, refused) == (
            "invalid_address",
            None,
            "invalid_address",
            "pending",
        )
        assert _state(connection, number) == (None, "invalid_number", "pending", "invalid_number")
        assert _state(connection, unsubscribed) == ("unsubscribe", None, "unsubscribe", "pending")
        assert _state(connection, clean) == (None, None, "pending", "pending")
        # an opt-in now clears what it should: a number Twilio refused, not a refused address
        assert opt_in(connection, number, "whatsapp", T0) is True
        assert opt_in(connection, refused, "email", T0) is False

    downgrade(engine, BEFORE)  # data only: the codes stay, valid for the revision before
    with engine.connect() as connection:
        assert _state(connection, refused)[0] == "invalid_address"
    upgrade(engine)
