"""KPIs, the stuck-work detector and the HTML report on a small database with known figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops import kpis, stuck
from leadops.configfile import ConfigError
from leadops.models import CAMPAIGN_VERSIONS, ENROLLMENTS, LEADS, QUARANTINE, TOUCHES
from leadops.report import build_report, markdown, write_html
from tests.conftest import make_settings

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


class World:
    """Inserts rows with just the columns a test cares about."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
                    email=f"l{created.timestamp()}-{stage}-{score}-{source}-{phone}@example.com",
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
        provider_id: str | None = None,
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
                    provider_id=provider_id,
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
            QUARANTINE.insert().values(
                source="csv",
                raw={"email": "bad"},
                reasons=["bad_email"],
                status="open",
                created_at=NOW,
            )
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
    assert (report.nurtured, report.nurture_converted) == (2, 1)
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

    day1_email = next(s for s in report.steps if (s.step, s.channel) == ("day-1", "email"))
    assert (day1_email.attempted, day1_email.sent) == (2, 2)
    day1_wa = next(s for s in report.steps if (s.step, s.channel) == ("day-1", "whatsapp"))
    assert (day1_wa.attempted, day1_wa.ambiguous) == (1, 1)
    assert report.sends_per_day == [
        ((NOW - timedelta(days=5)).date(), 1),
        ((NOW - timedelta(days=3)).date(), 1),
    ]
    assert report.missing == []
    # No webhook events yet: every rate is 0 of the 2 emails sent; replies are not
    # reported for email (no inbound email), so they show as "-".
    assert day1_email.accepted == 2
    assert day1_email.engagement == {
        "delivered": 0,
        "opened": 0,
        "clicked": 0,
        "replied": None,
        "unsubscribed": 0,
        "bounced": 0,
    }
    assert kpis.engagement_rows(report) == [
        {
            "campaign": "educate",
            "step": "day-1",
            "channel": "email",
            "sent": 2,
            "delivered": "0.0% (0)",
            "opened": "0.0% (0)",
            "clicked": "0.0% (0)",
            "replied": "-",
            "unsubscribed": "0.0% (0)",
            "bounced": "0.0% (0)",
        }
    ]
    assert report.escalations.total == 0 and report.escalations.response_median_hours is None


def test_engagement_metric_plugs_in_as_one_query(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def opened(conn: sa.Connection) -> dict[tuple[str, str, str], int]:
        return {("educate", "day-1", "email"): 1}

    metric = kpis.EngagementMetric(opened, frozenset({"email"}), "test")
    monkeypatch.setitem(kpis.ENGAGEMENT_METRICS, "opened", metric)
    report = kpis.compute(world.engine, NOW, config_dir=tmp_path)
    step = next(s for s in report.steps if (s.step, s.channel) == ("day-1", "email"))
    assert step.rate(step.engagement["opened"]) == 0.5
    assert kpis.engagement_rows(report)[0]["opened"] == "50.0% (1)"


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
        "escalations_past_sla": 0,
        "escalation_notifications": 0,
        "inbox_pending": 0,
        "webhook_rejections": 0,
    }
    overdue = next(f for f in report.findings if f.check.key == "overdue_touches")
    assert overdue.sample[0]["hold_reason"] == "render_error"
    assert report.total == 4 and report.over_threshold
    assert "above the threshold of 3" in str(stuck.StuckWorkError(report))
    rows = stuck.finding_rows(report)
    assert [r["count"] for r in rows if r["check"] == "escalations_past_sla"] == [0]


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
    assert html.count("<svg") == 4
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
        kpis.load_spend(tmp_path)
    assert kpis.load_spend(tmp_path / "nowhere") == ("USD", {})


def test_sends_per_day_is_a_date(world: World, tmp_path: Path) -> None:
    report = kpis.compute(world.engine, NOW, config_dir=tmp_path)
    assert all(isinstance(d, date) for d, _ in report.sends_per_day)
