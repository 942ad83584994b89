"""KPIs, the stuck-work detector and the HTML report on a small database with known figures."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.configfile import ConfigError
from leadops.core.settings import Settings
from leadops.engagement import inbox
from leadops.engagement.apply import process_inbox
from leadops.engagement.report import RescoreReport
from leadops.engagement.scoring import load_scoring
from leadops.models import (
    CAMPAIGN_VERSIONS,
    ENROLLMENTS,
    LEADS,
    QUARANTINE,
    QUARANTINED_FILES,
    STAGE_CHANGES,
    TOUCHES,
)
from leadops.providers.inbound import InboxRecord
from leadops.providers.sendgrid.events import sendgrid_records
from leadops.providers.twilio.events import twilio_inbound_record, twilio_status_record
from leadops.reporting import kpis, spend, stuck
from leadops.reporting.kpi_figures import KpiReport, StepRates
from leadops.reporting.report import build_report, markdown, write_html
from leadops.reporting.step_kpis import ENGAGEMENT_METRICS
from leadops.runtime import load_escalation_runtime
from leadops.sales.acks import acknowledge, close
from leadops.sales.escalation import escalate
from tests.conftest import ROOT, make_settings
from tests.engagement import inbound_params, sg_event, status_params

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


class World:
    """Inserts rows with just the columns a test cares about."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.numbers = itertools.count(1)
        with engine.begin() as conn:
            self.version = conn.execute(
                CAMPAIGN_VERSIONS.insert().values(
                    campaign="educate", version=1, checksum="x", definition={}, created_at=NOW
                )
            ).inserted_primary_key[0]

    def lead(
        self,
        stage: str,
        created: datetime,
        *,
        score: int = 0,
        source: str = "web",
        phone: str | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            lead_id = conn.execute(
                LEADS.insert().values(
                    email=f"lead{next(self.numbers)}@example.com",
                    phone=phone,
                    country="GB",
                    email_consent=True,
                    whatsapp_consent=phone is not None,
                    lifecycle_stage=stage,
                    score=score,
                    source=source,
                    timezone="UTC",
                    created_at=created,
                    updated_at=created,
                )
            ).inserted_primary_key[0]
            self.enrollment = conn.execute(
                ENROLLMENTS.insert().values(
                    lead_id=lead_id,
                    campaign="educate",
                    campaign_version_id=self.version,
                    status="active",
                    started_at=created,
                )
            ).inserted_primary_key[0]
        return int(lead_id)

    def touch(
        self,
        lead_id: int,
        step: str,
        status: str,
        *,
        due: datetime,
        sent: datetime | None = None,
        channel: str = "email",
        hold: str | None = None,
        not_before: datetime | None = None,
        updated: datetime | None = None,
        provider_message_id: str | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            enrollment = conn.execute(
                sa.select(ENROLLMENTS.c.id).where(ENROLLMENTS.c.lead_id == lead_id)
            ).scalar_one()
            return conn.execute(
                TOUCHES.insert().values(
                    lead_id=lead_id,
                    enrollment_id=enrollment,
                    campaign="educate",
                    campaign_version_id=self.version,
                    step=step,
                    step_day=int(step.split("-")[1]),
                    channel=channel,
                    status=status,
                    due_at=due,
                    not_before=not_before or due,
                    hold_reason=hold,
                    sent_at=sent,
                    provider_message_id=provider_message_id,
                    created_at=due,
                    updated_at=updated or sent or due,
                )
            ).inserted_primary_key[0]


@pytest.fixture
def world(engine: Engine) -> World:
    w = World(engine)
    day = timedelta(days=1)
    a = w.lead("sql", NOW - 5 * day, score=35, source="google-ads")
    b = w.lead("lead", NOW - 5 * day, score=12, source="google-ads")
    w.lead("mql", NOW - 3 * day, score=55, source="webinar")  # never followed up
    w.lead("customer", NOW - 3 * day, score=90, source="webinar")  # not expected to be
    w.lead("subscriber", NOW - H, score=0, source="webinar")  # too new to count
    # a: first message 2 h after creation; b: 48 h after.
    w.touch(a, "day-1", "sent", due=NOW - 5 * day + H, sent=NOW - 5 * day + 2 * H)
    w.touch(a, "day-10", "failed", due=NOW - 2 * H, updated=NOW - H)
    w.touch(b, "day-1", "sent", due=NOW - 3 * day, sent=NOW - 3 * day)
    w.touch(b, "day-1", "ambiguous", due=NOW - 3 * day, channel="whatsapp")
    # overdue and stuck (eligible since two days, nobody sent it)
    w.touch(b, "day-10", "pending", due=NOW - 2 * day, hold="render_error")
    # held by the send window, next try in the future: scheduled, not stuck
    w.touch(
        a,
        "day-20",
        "pending",
        due=NOW - 2 * day,
        hold="outside_send_window",
        not_before=NOW + 3 * H,
        channel="whatsapp",
    )
    # failed long ago: outside the lookback window
    w.touch(b, "day-20", "failed", due=NOW - 4 * day, updated=NOW - 4 * day)
    with engine.begin() as conn:
        conn.execute(
            QUARANTINE.insert(),
            [
                # open for two days: stuck; open for an hour: waiting for a decision
                {
                    "source": "csv",
                    "raw": {"email": "bad"},
                    "reasons": ["bad_email"],
                    "status": "open",
                    "created_at": NOW - 2 * day,
                },
                {
                    "source": "csv",
                    "raw": {"email": "new-bad"},
                    "reasons": ["bad_email"],
                    "status": "open",
                    "created_at": NOW - H,
                },
            ],
        )
    return w


def test_kpis_from_known_rows(world: World, tmp_path: Path) -> None:
    (tmp_path / "spend.yaml").write_text(
        "currency: EUR\nsources:\n  google-ads: 300\n  radio: 50\n"
    )
    report = kpis.compute(world.engine, NOW, config_dir=tmp_path)

    assert report.leads_total == 5
    assert report.response_leads == 2
    assert report.response_avg_hours == pytest.approx(25.0, abs=0.01)  # (2 h + 48 h) / 2
    assert report.response_within_day == 0.5
    # a was at SQL when first messaged (no stage change: its stage now): not nurtured to it
    assert (report.nurtured, report.nurture_converted) == (1, 0)
    assert report.score_avg == pytest.approx((35 + 12 + 55 + 90 + 0) / 5)
    histogram = dict(report.score_histogram)
    assert histogram["0-9"] == 1 and histogram["10-19"] == 1 and histogram["90-99"] == 1
    assert sum(histogram.values()) == 5

    funnel = {f.stage: f for f in report.funnel}
    assert funnel["subscriber"].reached == 5
    assert funnel["lead"].reached == 4
    assert funnel["mql"].reached == 3
    assert funnel["sql"].reached == 2 and funnel["sql"].current == 1
    assert funnel["mql"].conversion == pytest.approx(2 / 3)

    costs = {c.source: c for c in report.costs}
    assert report.currency == "EUR"
    assert costs["google-ads"].cost_per_lead == 150.0
    assert costs["webinar"].spend is None and costs["webinar"].leads == 3
    assert costs["radio"].leads == 0 and costs["radio"].cost_per_lead is None

    assert report.never_followed_up == 1
    assert report.never_followed_up_by_stage == {"mql": 1}
    assert report.uncontactable == 0

    day1_email = next(s for s in report.steps if (s.step, s.channel) == ("day-1", "email"))
    assert (day1_email.attempted, day1_email.sent) == (2, 2)
    day1_wa = next(s for s in report.steps if (s.step, s.channel) == ("day-1", "whatsapp"))
    assert (day1_wa.attempted, day1_wa.ambiguous) == (1, 1)
    assert report.sends_per_day == [
        ((NOW - timedelta(days=5)).date(), 1),
        ((NOW - timedelta(days=3)).date(), 1),
    ]
    # No provider has sent an event yet: no rate is known (not 0%), and the report says why.
    assert day1_email.accepted == 2
    assert set(day1_email.engagement.values()) == {None}
    assert kpis.engagement_rows(report)[0] == {
        "campaign": "educate",
        "step": "day-1",
        "channel": "email",
        "sent": 2,
        **{name: "-" for name in ENGAGEMENT_METRICS},
    }
    assert [name for name, _ in report.missing] == [
        "email engagement rates",
        "whatsapp engagement rates",
    ]
    assert report.escalations.total == 0 and report.escalations.response_median_hours is None


def test_a_channel_is_reported_once_its_provider_sends_events(world: World, tmp_path: Path) -> None:
    with world.engine.connect() as conn:
        a_email = conn.execute(
            sa.select(TOUCHES.c.id, TOUCHES.c.lead_id).where(
                TOUCHES.c.step == "day-1", TOUCHES.c.channel == "email", TOUCHES.c.sent_at < NOW
            )
        ).first()
    assert a_email is not None
    touch_id, lead_id = a_email
    event = sg_event("delivered", lead_id, touch_id, NOW - H)
    inbox.store(world.engine, _sendgrid(event), NOW - H)
    process_inbox(world.engine, load_scoring(ROOT / "config"), NOW, RescoreReport(now=NOW))

    report = kpis.compute(world.engine, NOW, config_dir=tmp_path)
    row = kpis.engagement_rows(report)[0]
    assert (row["channel"], row["delivered"], row["opened"], row["replied"]) == (
        "email",
        "50.0% (1)",
        "0.0% (0)",
        "-",
    )
    assert [name for name, _ in report.missing] == ["whatsapp engagement rates"]


def test_stuck_work_detector(world: World) -> None:
    report = stuck.detect(
        world.engine, NOW, threshold=3, stuck_after=timedelta(days=1), lookback=timedelta(days=1)
    )
    counts = {f.check.key: f.count for f in report.findings}
    assert counts == {
        "overdue_touches": 1,
        "failed_touches": 1,
        "ambiguous_touches": 1,
        "open_quarantine": 1,
        "open_quarantined_files": 0,
        "escalations_past_sla": 0,
        "escalation_notifications": 0,
        "inbox_pending": 0,
        "dead_letters": 0,
        "webhook_rejections": 0,
    }
    overdue = next(f for f in report.findings if f.check.key == "overdue_touches")
    assert overdue.sample[0]["hold_reason"] == "render_error"
    assert report.total == 4 and report.over_threshold
    assert "above the threshold of 3" in str(stuck.StuckWorkError(report))
    rows = stuck.finding_rows(report)
    assert [r["count"] for r in rows if r["check"] == "escalations_past_sla"] == [0]


def test_an_open_quarantine_record_is_stuck_once_older_than_stuck_after(
    engine: Engine,
) -> None:
    after = timedelta(hours=24)
    minute = timedelta(minutes=1)
    rows = [
        ("open", NOW - after - minute),  # stuck
        ("open", NOW - after + minute),  # still inside the stuck-after window
        ("released", NOW - 3 * after),  # decided: never stuck
        ("dropped", NOW - 3 * after),
    ]
    with engine.begin() as conn:
        conn.execute(
            QUARANTINE.insert(),
            [
                {
                    "source": "csv",
                    "source_ref": f"leads.csv:{n}",
                    "raw": {"email": f"bad-{n}"},
                    "reasons": ["bad_email"],
                    "status": status,
                    "created_at": created,
                }
                for n, (status, created) in enumerate(rows)
            ],
        )
    report = stuck.detect(engine, NOW, threshold=0, stuck_after=after, lookback=after)
    finding = next(f for f in report.findings if f.check.key == "open_quarantine")
    assert finding.count == 1
    assert [row["source_ref"] for row in finding.sample] == ["leads.csv:0"]
    assert report.total == 1 and report.over_threshold
    # a day later the second record has waited too long as well
    later = stuck.detect(engine, NOW + after, threshold=0, stuck_after=after, lookback=after)
    assert next(f for f in later.findings if f.check.key == "open_quarantine").count == 2


def test_an_open_quarantined_file_is_stuck_once_older_than_stuck_after(engine: Engine) -> None:
    after = timedelta(hours=24)
    minute = timedelta(minutes=1)
    rows = [
        ("open", NOW - after - minute),  # stuck
        ("open", NOW - after + minute),  # still waiting for a decision
        ("released", NOW - 3 * after),
    ]
    with engine.begin() as conn:
        conn.execute(
            QUARANTINED_FILES.insert(),
            [
                {
                    "source": "csv",
                    "name": f"drop-{n}.csv",
                    "path": f"/inbox/drop-{n}.csv",
                    "stored_path": f"/data/quarantine/files/{n}.csv",
                    "checksum": f"{n:064x}",
                    "size": 10,
                    "reason": "binary_file",
                    "detail": "not a text file",
                    "status": status,
                    "created_at": created,
                }
                for n, (status, created) in enumerate(rows)
            ],
        )
    report = stuck.detect(engine, NOW, threshold=0, stuck_after=after, lookback=after)
    finding = next(f for f in report.findings if f.check.key == "open_quarantined_files")
    assert finding.count == 1
    assert [row["name"] for row in finding.sample] == ["drop-0.csv"]
    later = stuck.detect(engine, NOW + after, threshold=0, stuck_after=after, lookback=after)
    assert next(f for f in later.findings if f.check.key == "open_quarantined_files").count == 2


def test_a_check_needing_a_missing_table_is_unavailable(world: World) -> None:
    check = stuck.StuckCheck(
        key="late_escalations",
        title="escalations past SLA",
        action="-",
        tables=("no_such_table",),
        count=lambda conn, ctx: 1,
        sample=lambda conn, ctx: [],
    )
    report = stuck.detect(
        world.engine,
        NOW,
        threshold=0,
        stuck_after=timedelta(days=1),
        lookback=timedelta(days=1),
        checks=[check],
    )
    assert report.findings[0].count is None and report.total == 0
    assert report.unavailable[0].check.key == "late_escalations"


def test_html_report_is_self_contained(world: World, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    settings = make_settings(tmp_path, config_dir=tmp_path / "config")
    report = build_report(world.engine, settings, NOW)
    path = write_html(report, tmp_path / "out" / "report.html")
    html = path.read_text()
    assert html.count("<svg") == 7  # four charts, and three of the calibration
    assert "Funnel" in html and "Lead score distribution" in html and "sent per day" in html
    assert "Engagement per campaign step" in html and "Escalations to sales" in html
    for external in ("<script", "src=", 'href="http', "@import", "url("):
        assert external not in html
    assert "ABOVE threshold" in html
    text = markdown(report, path)
    assert "| overdue_touches | 1 |" in text and path.as_uri() in text


def test_spend_file_errors_name_the_file_and_source(tmp_path: Path) -> None:
    (tmp_path / "spend.yaml").write_text("sources:\n  google-ads: lots\n")
    with pytest.raises(ConfigError, match=r"spend.yaml.*google-ads.*lots"):
        spend.load_spend(tmp_path)
    assert spend.load_spend(tmp_path / "nowhere") == ("USD", {})


def test_sends_per_day_is_a_date(world: World, tmp_path: Path) -> None:
    report = kpis.compute(world.engine, NOW, config_dir=tmp_path)
    assert all(isinstance(d, date) for d, _ in report.sends_per_day)


# -- engagement events and escalations, through the real ingestion and escalation code --

ROUTING = """\
sla_minutes: 15
manager: {name: Mia Manager, email: mia@northwind.example}
fallback_queue: {name: Inside sales queue, email: queue@northwind.example}
reps:
  - key: ana
    name: Ana Ames
    email: ana@northwind.example
    slack_webhook_url: env:TEST_REPORT_SLACK_UNSET
    notify: [email, slack]
    hours: {start: "00:00", end: "23:59", days: [mon, tue, wed, thu, fri, sat, sun]}
"""
C_PHONE, D_PHONE = "+447700900201", "+447700900202"


def _sendgrid(*events: dict[str, Any]) -> list[InboxRecord]:
    return sendgrid_records(json.dumps(list(events)).encode())


@dataclass
class Engaged:
    world: World
    settings: Settings
    leads: dict[str, int]
    touches: dict[str, int]
    escalations: dict[str, int]


@pytest.fixture
def engaged(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engaged:
    """The world plus three nurtured leads whose webhook events went through the inbox and
    the rescore run's processing, and four escalations routed, acknowledged and closed by
    the escalation code."""
    monkeypatch.delenv("TEST_REPORT_SLACK_UNSET", raising=False)
    engine, day = world.engine, timedelta(days=1)
    c = world.lead("lead", NOW - 5 * day, phone=C_PHONE)
    d = world.lead("lead", NOW - 5 * day, phone=D_PHONE)
    f = world.lead("lead", NOW - 5 * day)
    sent = NOW - 4 * day
    t = {
        "c-email": world.touch(c, "day-1", "sent", due=sent, sent=sent),
        "c-wa": world.touch(c, "day-1", "sent", due=sent, sent=sent, channel="whatsapp"),
        "c-email-10": world.touch(c, "day-10", "sent", due=NOW - day, sent=NOW - day),
        "d-wa": world.touch(
            d, "day-1", "sent", due=sent, sent=sent, channel="whatsapp", provider_message_id="SMd1"
        ),
        "d-email": world.touch(d, "day-1", "sent", due=sent, sent=sent + 2 * H),
        "f-email": world.touch(f, "day-1", "sent", due=sent, sent=sent),
    }
    at = NOW - 3 * day
    records = _sendgrid(
        sg_event("delivered", c, t["c-email"], at),
        sg_event("delivered", d, t["d-email"], at),
        *(sg_event("open", c, t["c-email"], at + n * H, n=n) for n in range(3)),  # once
        sg_event("open", d, t["d-email"], at, sg_machine_open=True),  # a privacy proxy
        sg_event("click", c, t["c-email"], at + H, url="https://northwind.example/pricing"),
        sg_event("bounce", f, t["f-email"], at, type="bounce", reason="550 no such user"),
        {**sg_event("open", c, t["c-email-10"], NOW - H), "touch_id": t["c-email-10"]},
        sg_event("open", 999_999, t["d-email"], at, n=7),  # no such lead: ignored
    )
    records += [
        twilio_status_record(status_params("SMc1", "delivered"), t["c-wa"]),
        twilio_status_record(status_params("SMc1", "read"), t["c-wa"]),
        twilio_status_record(status_params("SMd1", "delivered"), None),  # by its SID
        twilio_inbound_record(inbound_params("SMin1", C_PHONE, "Yes, tell me more")),
        twilio_inbound_record(inbound_params("SMin2", D_PHONE, "STOP")),
        inbox.unsubscribe_record(d, "all", "token-d", "one-click"),
    ]
    assert inbox.store(engine, records, NOW - 2 * H) == len(records)
    process_inbox(
        engine, load_scoring(ROOT / "config"), NOW - 2 * H, RescoreReport(now=NOW - 2 * H)
    )
    # Arrived after that run: one waiting for two hours (stuck), one for ten minutes.
    inbox.store(engine, _sendgrid(sg_event("open", c, t["c-email"], NOW, n=9)), NOW - 2 * H)
    inbox.store(engine, _sendgrid(sg_event("open", d, t["d-email"], NOW, n=9)), NOW - 10 * M)
    inbox.count_rejection(engine, "sendgrid", "bad_signature", NOW - 3 * H)
    inbox.count_rejection(engine, "sendgrid", "bad_signature", NOW - 2 * H)
    inbox.count_rejection(engine, "site", "malformed", NOW - 3 * day)  # outside the lookback

    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    settings = make_settings(tmp_path, routing_file=routing, config_dir=tmp_path)
    runtime = load_escalation_runtime(settings, engine=engine)
    g = world.lead("sql", NOW - 5 * day)
    h = world.lead("sql", NOW - 5 * day)
    i = world.lead("sql", NOW - 5 * day)
    with engine.begin() as conn:  # scoring moved g to SQL an hour before it was escalated
        conn.execute(
            STAGE_CHANGES.insert().values(
                lead_id=g,
                from_stage="mql",
                to_stage="sql",
                score=80,
                reason="score 80 reached the sql threshold 80",
                changed_at=NOW - 5 * H,
            )
        )

    def escalated(lead_id: int, trigger: str, when: datetime) -> int:
        result = escalate(engine, lead_id, trigger, "k", 80, [], when, runtime=runtime)
        assert result.created and result.rep_key == "ana" and result.escalation_id is not None
        return result.escalation_id

    # 4 ever acknowledged (10, 120, 300 min after), 1 still open and past its SLA
    e = {
        "a": escalated(world_sql_lead(world), "sql_threshold", NOW - 3 * H),
        "g": escalated(g, "sql_threshold", NOW - 4 * H),
        "i": escalated(i, "demo_requested", NOW - 6 * H),
        "h": escalated(h, "sql_threshold", NOW - 2 * H),
    }
    assert acknowledge(engine, e["a"], now=NOW - 3 * H + 10 * M, by="ana").ok
    assert acknowledge(engine, e["g"], now=NOW - 2 * H, by="ana").ok
    assert acknowledge(engine, e["i"], now=NOW - H, by="ana").ok
    close(engine, e["i"], "lost", now=NOW - H, by="ana")
    return Engaged(world, settings, {"c": c, "d": d, "f": f, "g": g, "h": h, "i": i}, t, e)


def world_sql_lead(world: World) -> int:
    """Lead `a` of the world: the one imported at SQL."""
    with world.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(LEADS.c.id).where(LEADS.c.lifecycle_stage == "sql").order_by(LEADS.c.id)
            )
            .scalars()
            .first()
        )


def _step(report: KpiReport, step: str, channel: str) -> StepRates:
    return next(s for s in report.steps if (s.step, s.channel) == (step, channel))


def test_engagement_rates_count_unique_touches_per_step(engaged: Engaged, tmp_path: Path) -> None:
    report = kpis.compute(engaged.world.engine, NOW, config_dir=tmp_path)
    assert report.missing == []

    email = _step(report, "day-1", "email")
    # a, b (the world), c, d, f: five emails accepted; f's bounced later (now failed)
    assert (email.accepted, email.sent, email.failed) == (5, 4, 1)
    assert email.engagement == {
        "delivered": 2,  # c, d
        "opened": 1,  # c three times; d's privacy-proxy open is no open
        "clicked": 1,
        "replied": None,  # no inbound email: not reported for email
        "unsubscribed": 1,  # d's unsubscribe link: d's last message before it
        "bounced": 1,  # f
    }
    whatsapp = _step(report, "day-1", "whatsapp")
    assert whatsapp.accepted == 2  # c, d (b's is ambiguous: never accepted)
    assert whatsapp.engagement == {
        "delivered": 2,  # c by touch id (delivered, read), d by its MessageSid
        "opened": 1,  # c read it
        "clicked": None,
        "replied": 1,  # c: counted for the last WhatsApp message before the reply
        "unsubscribed": 1,  # d sent STOP
        "bounced": 0,
    }
    day10 = _step(report, "day-10", "email")
    assert day10.accepted == 1 and day10.engagement["opened"] == 1  # touch_id as a number
    rows = {(r["step"], r["channel"]): r for r in kpis.engagement_rows(report)}
    assert rows["day-1", "email"]["opened"] == "20.0% (1)"
    assert rows["day-1", "whatsapp"]["replied"] == "50.0% (1)"
    assert rows["day-1", "whatsapp"]["clicked"] == "-"


def test_sales_response_and_escalation_figures(engaged: Engaged, tmp_path: Path) -> None:
    report = kpis.compute(engaged.world.engine, NOW, config_dir=tmp_path)
    esc = report.escalations
    assert esc.total == 4
    assert esc.by_status == {"acknowledged": 2, "closed_lost": 1, "open": 1}
    assert (esc.awaiting, esc.in_queue, esc.past_sla, esc.acknowledged) == (1, 0, 1, 3)
    assert esc.ack_median_minutes == pytest.approx(120.0, abs=0.01)  # 10, 120, 300
    assert esc.ack_avg_minutes == pytest.approx(430 / 3, abs=0.01)
    assert esc.within_sla == pytest.approx(1 / 3)  # only a's, 10 min after (SLA 15 min)
    # From SQL to acknowledgement: a 10 min (imported at SQL: from its escalation), g 3 h
    # (from its stage change, an hour before the escalation), i 5 h (a demo request).
    assert esc.response_count == 3
    assert esc.response_median_hours == pytest.approx(3.0, abs=0.001)
    assert esc.response_avg_hours == pytest.approx((10 / 60 + 3 + 5) / 3, abs=0.001)
    # i was recycled after reaching SQL: it still counts as reached SQL.
    funnel = {f.stage: f for f in report.funnel}
    assert funnel["sql"].current == 3  # a, g, h
    assert funnel["sql"].reached == 5  # a, g, h, i and the customer
    rows = {r["figure"]: r["value"] for r in kpis.escalation_rows(report)}
    assert rows["of which past their SLA"] == "1"
    assert rows["time to acknowledge"] == "120.0 min median, 143.3 min avg"


def test_stuck_checks_for_escalations_inbox_and_webhooks(engaged: Engaged) -> None:
    report = stuck.detect(
        engaged.world.engine,
        NOW,
        threshold=0,
        stuck_after=timedelta(days=1),
        lookback=timedelta(days=1),
    )
    found = {f.check.key: f for f in report.findings}
    assert found["escalations_past_sla"].count == 1
    assert found["escalations_past_sla"].sample[0]["id"] == engaged.escalations["h"]
    # h's Slack notification failed (its webhook variable is not set); the failed Slack
    # notifications of acknowledged or closed escalations no longer matter.
    assert found["escalation_notifications"].count == 1
    note = found["escalation_notifications"].sample[0]
    assert (note["escalation_id"], note["channel"], note["status"]) == (
        engaged.escalations["h"],
        "slack",
        "failed",
    )
    assert found["inbox_pending"].count == 1
    # f's bounce failed its touch within the lookback window
    assert found["failed_touches"].count == 2
    # informational: shown, never part of the total
    assert found["webhook_rejections"].count == 2
    assert found["webhook_rejections"].sample[0]["reason"] == "bad_signature"
    assert report.total == sum(
        f.count or 0 for key, f in found.items() if key != "webhook_rejections"
    )
    assert "webhook_rejections" not in str(stuck.StuckWorkError(report))


def test_report_shows_engagement_and_escalations(engaged: Engaged, tmp_path: Path) -> None:
    report = build_report(engaged.world.engine, engaged.settings, NOW)
    html = write_html(report, tmp_path / "report.html").read_text()
    assert html.count("<svg") == 7
    assert "<title>educate day-1 whatsapp replied: 50.0%</title>" in html
    assert "<td>20.0% (1)</td>" in html
    assert "of which past their SLA" in html
    text = markdown(report)
    assert "## Engagement per step" in text and "| 20.0% (1) |" in text
    assert "| time to acknowledge | 120.0 min median, 143.3 min avg |" in text
