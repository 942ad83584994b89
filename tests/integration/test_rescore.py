"""The rescore run on a real database: stages and re-segmentation, suppression, decay,
the no-opens rule, fit changes and deterministic replay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import make_engine, upgrade
from leadops.engagement.scoring import Reason
from leadops.models import ENROLLMENTS, LEADS, SCORE_LEDGER, STAGE_CHANGES, TOUCHES
from tests.engagement import Harness, engagement_settings, new_signing_key, sg_event


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), engine, key)


@pytest.fixture
def lite(tmp_path: Path, sqlite_engine: Engine) -> Harness:
    key = new_signing_key()
    return Harness(engagement_settings(tmp_path, key), sqlite_engine, key)


def _enrollments(h: Harness, lead_id: int) -> list[tuple[str, str, str | None]]:
    e = ENROLLMENTS.c
    with h.engine.connect() as connection:
        return [
            tuple(row)  # type: ignore[misc]
            for row in connection.execute(
                sa.select(e.campaign, e.status, e.end_reason)
                .where(e.lead_id == lead_id)
                .order_by(e.id)
            ).all()
        ]


def _steps(h: Harness, lead_id: int) -> list[tuple[str, str, str, str]]:
    t = TOUCHES.c
    with h.engine.connect() as connection:
        return [
            tuple(row)  # type: ignore[misc]
            for row in connection.execute(
                sa.select(t.campaign, t.step, t.channel, t.status)
                .where(t.lead_id == lead_id)
                .order_by(t.id)
            ).all()
        ]


def test_scores_move_the_stage_and_the_lead_to_the_matching_campaign(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com", seniority="director", company_size=300)
    h.tick()
    touch = h.touch(lead_id, "email")
    at = h.clock.now()
    clicks = [
        sg_event("click", lead_id, touch["id"], at, n=1, url="https://northwind.example/a"),
        sg_event("open", lead_id, touch["id"], at, n=2),
    ]
    h.sendgrid(clicks)
    report = h.rescore()
    # fit 15 + 10, click 10, open 5 = 40: MQL
    assert h.lead(lead_id)["score"] == 40
    assert h.lead(lead_id)["lifecycle_stage"] == "mql"
    assert report.stage_changes == {"lead->mql": 1}
    assert report.sales_ready == []
    assert _enrollments(h, lead_id) == [  # educate's goal is becoming an MQL
        ("educate", "goal_reached", "goal reached: Became MQL (became mql)"),
        ("connect", "active", None),
    ]
    h.tick()
    assert [s for s in _steps(h, lead_id) if s[0] == "connect"] == [
        ("connect", "day-1", "email", "sent")
    ]

    h.clock.advance(timedelta(hours=1))
    h.site(
        [
            {
                "id": "t1",
                "type": "trial_started",
                "email": "ada@example.com",
                "occurred_at": h.clock.now().isoformat(),
            },
            {
                "id": "a1",
                "type": "appointment_booked",
                "email": "ada@example.com",
                "occurred_at": h.clock.now().isoformat(),
            },
        ]
    )
    report = h.rescore()
    assert h.lead(lead_id)["score"] == 90
    assert h.lead(lead_id)["lifecycle_stage"] == "sql"
    assert [(r.lead_id, r.trigger, r.score) for r in report.sales_ready] == [(lead_id, "sql", 90)]
    assert report.sales_ready[0].reasons == (
        Reason("appointment_booked", 25),
        Reason("trial_started", 25),
        Reason("senior-buyer", 15),
    )
    assert _enrollments(h, lead_id)[-1] == ("offer", "active", None)
    h.tick()
    # every step the lead got, each once; educate's and connect's day-1 are never repeated
    steps = _steps(h, lead_id)
    assert len(steps) == len(set(steps)) == 3
    with h.engine.connect() as connection:
        changes = connection.execute(
            sa.select(STAGE_CHANGES.c.from_stage, STAGE_CHANGES.c.to_stage, STAGE_CHANGES.c.score)
        ).all()
    assert [tuple(c) for c in changes] == [("lead", "mql", 40), ("mql", "sql", 90)]

    h.clock.advance(timedelta(hours=1))
    h.site(
        [
            {
                "id": "c1",
                "type": "appointment_cancelled",
                "email": "ada@example.com",
                "occurred_at": h.clock.now().isoformat(),
            }
        ]
    )
    h.rescore()
    assert h.lead(lead_id)["score"] == 85
    assert h.lead(lead_id)["lifecycle_stage"] == "sql"  # never moved back by scoring


def test_sales_stages_are_never_changed_by_scores(lite: Harness) -> None:
    h = lite
    customer = h.add_lead("c@example.com", lifecycle_stage="customer", seniority="vp")
    h.site(
        [
            {
                "id": f"d{n}",
                "type": "demo_requested",
                "email": "c@example.com",
                "occurred_at": h.clock.now().isoformat(),
            }
            for n in range(4)
        ]
    )
    h.rescore()
    assert h.lead(customer)["score"] == 115
    assert h.lead(customer)["lifecycle_stage"] == "customer"


@pytest.mark.parametrize("kind", ["bounce", "spamreport"])
def test_hard_bounce_and_spam_report_remove_the_lead_from_nurture(h: Harness, kind: str) -> None:
    lead_id = h.add_lead("ada@example.com", "+447700900123")
    h.tick()
    touch = h.touch(lead_id, "email")
    extra = {"type": "bounce", "reason": "550 5.1.1 user unknown"} if kind == "bounce" else {}
    assert h.sendgrid([sg_event(kind, lead_id, touch["id"], h.clock.now(), **extra)]).is_success
    report = h.rescore()
    lead = h.lead(lead_id)
    assert lead["email_suppressed_at"] is not None
    assert lead["whatsapp_suppressed_at"] is not None
    assert lead["email_suppression_reason"] == kind
    assert report.sequences_stopped == {kind: 1}
    if kind == "bounce":
        assert h.touch(lead_id, "email")["status"] == "failed"
        assert lead["unsubscribed_at"] is None  # a bounce is not an opt-out
    for _ in range(3):
        h.clock.advance(timedelta(days=10))
        h.tick()
        h.rescore()
    assert {step for _, step, _, status in _steps(h, lead_id) if status == "sent"} == {"day-1"}


def test_soft_bounce_and_other_drops_do_not_suppress(lite: Harness) -> None:
    h = lite
    lead_id = h.add_lead("ada@example.com")
    h.tick()
    touch = h.touch(lead_id, "email")
    at = h.clock.now()
    h.sendgrid(
        [
            sg_event("bounce", lead_id, touch["id"], at, type="blocked", reason="mailbox full"),
            sg_event("dropped", lead_id, touch["id"], at, reason="Spam Content"),
            sg_event("deferred", lead_id, touch["id"], at, attempt="1"),
        ]
    )
    h.rescore()
    assert h.lead(lead_id)["email_suppressed_at"] is None
    h.sendgrid([sg_event("dropped", lead_id, touch["id"], at, n=9, reason="Bounced Address")])
    h.rescore()
    assert h.lead(lead_id)["email_suppression_reason"] == "dropped"
    assert h.lead(lead_id)["whatsapp_suppressed_at"] is None


def test_group_unsubscribe_suppresses_email_and_resubscribe_lifts_it(lite: Harness) -> None:
    h = lite
    lead_id = h.add_lead("ada@example.com", "+447700900123")
    h.tick()
    touch = h.touch(lead_id, "email")
    at = h.clock.now()
    h.sendgrid([sg_event("group_unsubscribe", lead_id, touch["id"], at, asm_group_id=7)])
    h.rescore()
    lead = h.lead(lead_id)
    assert lead["email_suppression_reason"] == "group_unsubscribe"
    assert lead["whatsapp_suppressed_at"] is None
    assert _enrollments(h, lead_id) == [("educate", "active", None)]  # WhatsApp goes on
    h.sendgrid([sg_event("group_resubscribe", lead_id, touch["id"], at, asm_group_id=7)])
    h.rescore()
    assert h.lead(lead_id)["email_suppressed_at"] is None
    assert [r for r in h.ledger(lead_id)] == [("unsubscribe", -25), ("subscribe", 5)]


def test_engagement_decays_while_the_lead_is_inactive(h: Harness) -> None:
    lead_id = h.add_lead("ada@example.com")

    def site(kind: str, n: int, **properties: str) -> None:
        event = {
            "id": f"{kind}-{n}",
            "type": kind,
            "email": "ada@example.com",
            "occurred_at": h.clock.now().isoformat(),
            "properties": properties,
        }
        assert h.site(event).is_success

    site("trial_started", 1)
    site("subscribed", 2)
    h.rescore()
    assert h.lead(lead_id)["score"] == 30
    h.clock.advance(timedelta(days=13))
    assert h.rescore().decay_rows == 0  # still inside the 14-day grace period
    h.clock.advance(timedelta(days=31))  # 14 days grace + one 30-day half-life
    h.rescore()
    assert h.lead(lead_id)["score"] == 15
    h.rescore()
    assert [r for r in h.ledger(lead_id) if r[0] == "decay"] == [("decay", -15)]
    h.clock.advance(timedelta(days=30))
    h.rescore()
    assert h.lead(lead_id)["score"] == 8  # 30 / 4 = 7.5, rounded half up
    with h.engine.connect() as connection:
        total = connection.execute(
            sa.select(sa.func.sum(SCORE_LEDGER.c.points)).where(SCORE_LEDGER.c.lead_id == lead_id)
        ).scalar_one()
    assert total == 8  # the score is the sum of the ledger, decay included

    site("page_view", 3, url="https://northwind.example/pricing")
    h.rescore()
    assert h.lead(lead_id)["score"] == 18  # new activity: decay starts over from here
    h.clock.advance(timedelta(days=14 + 30))
    h.rescore()
    assert h.lead(lead_id)["score"] == 9


def test_no_opens_in_30_days_costs_points_once(lite: Harness) -> None:
    h = lite
    lead_id = h.add_lead("ada@example.com")
    h.tick()
    h.clock.advance(timedelta(days=29))
    h.rescore()
    assert ("no_opens", -10) not in h.ledger(lead_id)
    h.clock.advance(timedelta(days=2))
    h.rescore()
    h.clock.advance(timedelta(days=5))
    h.rescore()
    assert [r for r in h.ledger(lead_id) if r[0] == "no_opens"] == [("no_opens", -10)]
    assert h.lead(lead_id)["score"] == -10


def test_fit_points_follow_the_profile(lite: Harness) -> None:
    h = lite
    lead_id = h.add_lead("ada@example.com", seniority="manager", country="GB")
    h.rescore()
    assert sorted(h.ledger(lead_id)) == [("manager", 5), ("served-country", 5)]
    with h.engine.begin() as connection:
        connection.execute(sa.update(LEADS).where(LEADS.c.id == lead_id).values(seniority="vp"))
    h.rescore()
    assert h.ledger(lead_id)[2:] == [("manager", -5), ("senior-buyer", 15)]
    assert h.lead(lead_id)["score"] == 20


def test_processing_the_same_events_again_gives_the_same_ledger(tmp_path: Path) -> None:
    def run(folder: Path) -> list[tuple[object, ...]]:
        key = new_signing_key()
        settings = engagement_settings(folder, key)
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        h = Harness(settings, engine, key)
        lead_id = h.add_lead("ada@example.com", seniority="vp", company_size=80)
        h.tick()
        touch = h.touch(lead_id, "email")
        for day in range(0, 60, 3):
            h.clock.set(h.clock.now() + timedelta(days=3))
            at = h.clock.now()
            h.sendgrid(
                [
                    sg_event("open", lead_id, touch["id"], at, n=day),
                    sg_event("click", lead_id, touch["id"], at, n=day, url="https://n.example"),
                ]
            )
            h.rescore()
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    SCORE_LEDGER.c.rule, SCORE_LEDGER.c.points, SCORE_LEDGER.c.event_at
                ).order_by(SCORE_LEDGER.c.id)
            ).all()
        engine.dispose()
        return [tuple(r) for r in rows]

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first == second
    assert any(rule == "email_open" and points == 0 for rule, points, _ in first)  # caps hit
