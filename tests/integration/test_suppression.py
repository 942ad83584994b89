"""One suppression writer and one "leave nurture": reason codes kept, earlier reasons not
overwritten, queued touches skipped, and touch writes only through allowed moves."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.clock import SimulatedClock
from leadops.delivery.outcomes import write_outcomes
from leadops.delivery.suppression import NurtureScope, leave_nurture, opt_in, suppress
from leadops.models import ENROLLMENTS, LEADS, TOUCHES, TouchStatus
from leadops.models.vocab import OPT_IN_CLEARS, SuppressionReason
from leadops.nurture.plan import plan_all
from leadops.nurture.tick import run_dispatch
from leadops.runtime import load_runtime
from leadops.testing.fakes import FakeSendGrid, FakeTwilio
from leadops.testing.scenario import seed_leads
from tests.conftest import make_settings
from tests.integration.test_delivery import NOW, fakes, provider_settings

__all__ = ["fakes"]  # the providers' fixture, shared with test_delivery


def _add_touch(engine: Engine, lead_id: int, channel: str, step: str, **values: Any) -> int:
    """A copy of the lead's planned touch on `channel`, for another step, due later."""
    t = TOUCHES.c
    with engine.begin() as conn:
        row = dict(
            conn.execute(
                sa.select(TOUCHES).where(t.lead_id == lead_id, t.channel == channel).limit(1)
            )
            .mappings()
            .one()
        )
        row.pop("id")
        row.update(step=step, status=TouchStatus.PENDING, not_before=NOW + timedelta(days=3))
        row.update(values)
        return int(conn.execute(sa.insert(TOUCHES).values(row).returning(t.id)).scalar_one())


def _touch(engine: Engine, touch_id: int) -> tuple[str, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(TOUCHES.c.status, TOUCHES.c.hold_reason).where(TOUCHES.c.id == touch_id)
        ).one()
    return row.status, row.hold_reason


def _reasons(engine: Engine, lead_id: int) -> tuple[str | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(LEADS.c.email_suppression_reason, LEADS.c.whatsapp_suppression_reason).where(
                LEADS.c.id == lead_id
            )
        ).one()
    return row[0], row[1]


def test_a_refused_address_at_dispatch_keeps_a_code_and_skips_the_channel_s_queue(
    engine: Engine, tmp_path: Path, fakes: tuple[FakeSendGrid, FakeTwilio]
) -> None:
    sendgrid, twilio = fakes
    runtime = load_runtime(provider_settings(tmp_path, sendgrid, twilio), engine=engine)
    seed_leads(engine, 2, NOW)
    sendgrid.bad_addresses.add("lead000000@example.com")  # lead 1's email
    twilio.bad_numbers.add("+14150000001")  # lead 2's WhatsApp
    plan_all(runtime, NOW)
    later = {
        (lead, channel): _add_touch(engine, lead, channel, "later")
        for lead in (1, 2)
        for channel in ("email", "whatsapp")
    }
    report = run_dispatch(runtime, SimulatedClock(NOW))
    assert report.failed == 2 and report.sent_total == 2
    # the refused channel's queue is skipped with the code, the other channel's is kept
    assert _touch(engine, later[(1, "email")]) == ("skipped", "invalid_address")
    assert _touch(engine, later[(2, "whatsapp")]) == ("skipped", "invalid_number")
    assert _touch(engine, later[(1, "whatsapp")]) == ("pending", None)
    assert _touch(engine, later[(2, "email")]) == ("pending", None)
    # a code, not the provider's words (those stay in the failed touch's error)
    assert _reasons(engine, 1) == ("invalid_address", None)
    assert _reasons(engine, 2) == (None, "invalid_number")
    with engine.begin() as conn:
        assert not opt_in(conn, 1, "email", NOW)  # a refused address stays refused
        assert opt_in(conn, 2, "whatsapp", NOW)  # an opt-in from the number proves it
    assert _reasons(engine, 1) == ("invalid_address", None)
    assert _reasons(engine, 2) == (None, None)


def test_an_earlier_reason_is_kept_and_opt_in_clears_only_what_it_should(
    engine: Engine,
) -> None:
    reasons = list(SuppressionReason)
    seed_leads(engine, len(reasons), NOW)
    later = SuppressionReason.INVALID_ADDRESS
    with engine.begin() as conn:
        for lead_id, reason in enumerate(reasons, start=1):
            assert suppress(conn, lead_id, ["email"], reason, NOW) == ["email"]
            assert suppress(conn, lead_id, ["email"], later, NOW + timedelta(hours=1)) == []
        assert set(conn.execute(sa.select(LEADS.c.email_suppressed_at)).scalars()) == {NOW}
    for lead_id, reason in enumerate(reasons, start=1):
        assert _reasons(engine, lead_id) == (reason, None)
        with engine.begin() as conn:
            cleared = opt_in(conn, lead_id, "email", NOW + timedelta(days=1))
        assert cleared == (reason in OPT_IN_CLEARS)
        assert _reasons(engine, lead_id)[0] == (None if cleared else reason)


def test_a_free_text_reason_is_refused(engine: Engine) -> None:
    seed_leads(engine, 1, NOW)
    with engine.begin() as conn, pytest.raises(ValueError, match="unknown suppression reason"):
        suppress(conn, 1, ["email"], "SendGrid 400: does not contain a valid address", NOW)
    assert _reasons(engine, 1) == (None, None)


def _ended_enrollment(engine: Engine) -> int:
    """A completed earlier enrollment of lead 1 (a copy of its active one)."""
    with engine.begin() as conn:
        row = dict(conn.execute(sa.select(ENROLLMENTS)).mappings().one())
        row.pop("id")
        row.update(
            campaign="welcome", status="completed", ended_at=NOW, end_reason="cycle finished"
        )
        statement = sa.insert(ENROLLMENTS).values(row).returning(ENROLLMENTS.c.id)
        return int(conn.execute(statement).scalar_one())


def test_leave_nurture_skips_its_scope_and_never_what_left(engine: Engine, tmp_path: Path) -> None:
    runtime = load_runtime(make_settings(tmp_path), engine=engine)
    seed_leads(engine, 1, NOW)
    plan_all(runtime, NOW)
    queued = _add_touch(engine, 1, "email", "later")
    sent = _add_touch(engine, 1, "email", "earlier", status=TouchStatus.SENT)
    orphan = _add_touch(engine, 1, "email", "orphan", enrollment_id=_ended_enrollment(engine))
    with engine.begin() as conn:
        assert leave_nurture(conn, 1, "replied", NOW)
        ended = conn.execute(
            sa.select(ENROLLMENTS.c.status, ENROLLMENTS.c.end_reason).order_by(ENROLLMENTS.c.id)
        ).all()
    assert [tuple(row) for row in ended] == [("exited", "replied"), ("completed", "cycle finished")]
    assert _touch(engine, queued) == ("skipped", "replied")
    assert _touch(engine, orphan) == ("pending", None)  # not of the enrollment
    assert _touch(engine, sent) == ("sent", None)
    with engine.begin() as conn:  # handed to sales: every pending touch of the lead
        assert not leave_nurture(conn, 1, "escalated", NOW, scope=NurtureScope.LEAD)
    assert _touch(engine, orphan) == ("skipped", "escalated")
    assert _touch(engine, sent) == ("sent", None)


def test_the_dispatcher_s_outcome_write_refuses_an_illegal_move(
    engine: Engine, tmp_path: Path
) -> None:
    runtime = load_runtime(make_settings(tmp_path), engine=engine)
    seed_leads(engine, 1, NOW)
    plan_all(runtime, NOW)
    sent = _add_touch(engine, 1, "email", "a", status=TouchStatus.SENT, claim_token="tok")
    claimed = _add_touch(engine, 1, "email", "b", status=TouchStatus.CLAIMED, claim_token="tok")
    rows = [
        {"id": touch_id, "status": TouchStatus.PENDING, "hold_reason": "quiet_hours"}
        for touch_id in (sent, claimed)
    ]
    write_outcomes(engine, SimulatedClock(NOW), "tok", rows)
    assert _touch(engine, sent) == ("sent", None)  # a sent touch never goes back
    assert _touch(engine, claimed) == ("pending", "quiet_hours")


def test_a_lead_moved_to_another_campaign_leaves_nurture_with_its_held_touches(
    engine: Engine, tmp_path: Path
) -> None:
    runtime = load_runtime(make_settings(tmp_path), engine=engine)
    seed_leads(engine, 1, NOW)
    plan_all(runtime, NOW)
    held = _add_touch(engine, 1, "email", "held", hold_reason="quiet_hours")
    with engine.begin() as conn:
        conn.execute(sa.update(LEADS).values(lifecycle_stage="mql"))
    report = plan_all(runtime, NOW + timedelta(hours=1))
    assert report.exited == 1
    assert _touch(engine, held) == ("skipped", "enrollment_ended")  # never sent later
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                ENROLLMENTS.c.campaign, ENROLLMENTS.c.status, ENROLLMENTS.c.end_reason
            ).order_by(ENROLLMENTS.c.id)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("educate", "exited", "moved to connect"),
        ("connect", "active", None),
    ]
