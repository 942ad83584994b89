"""Revenue KPIs on a fixed set of leads whose figures are worked out by hand: CRM truth
over the rep's close, attribution to source and campaigns, cycle time, ROI, lead
velocity."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from leadops.core.configfile import ConfigError
from leadops.models import (
    CAMPAIGN_VERSIONS,
    CRM_DEALS,
    ENROLLMENTS,
    ESCALATIONS,
    LEADS,
    STAGE_CHANGES,
    TOUCHES,
)
from leadops.reporting import html, kpis
from leadops.reporting.report import Report, markdown
from leadops.reporting.report_data import report_sections
from leadops.reporting.spend import load_lifetime_value
from leadops.reporting.stuck import StuckReport

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
D = timedelta(days=1)
SPEND = """\
currency: USD
sources: {google-ads: 3000, webinar: 2000}
lifetime_value:
  multiplier: 2
  sources: {webinar: 9000}
"""


class Sales:
    """A small factory of leads, enrollments, messages, escalations and CRM deals."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.n = itertools.count(1)
        self.versions: dict[str, int] = {}
        self.enrolled: dict[tuple[int, str], int] = {}

    def lead(self, source: str, created: datetime, *campaigns: str, stage: str = "lead") -> int:
        with self.engine.begin() as conn:
            lead = int(
                conn.execute(
                    LEADS.insert().values(
                        email=f"r{next(self.n)}@example.com",
                        source=source,
                        lifecycle_stage=stage,
                        created_at=created,
                        updated_at=created,
                    )
                ).inserted_primary_key[0]
            )
            for index, campaign in enumerate(campaigns):
                # one active enrollment per lead: the earlier ones completed
                if campaign not in self.versions:
                    self.versions[campaign] = conn.execute(
                        CAMPAIGN_VERSIONS.insert().values(
                            campaign=campaign,
                            version=1,
                            checksum="x",
                            definition={},
                            created_at=created,
                        )
                    ).inserted_primary_key[0]
                self.enrolled[(lead, campaign)] = conn.execute(
                    ENROLLMENTS.insert().values(
                        lead_id=lead,
                        campaign=campaign,
                        started_at=created,
                        status="active" if index == len(campaigns) - 1 else "completed",
                        campaign_version_id=self.versions[campaign],
                    )
                ).inserted_primary_key[0]
        return lead

    def sent(self, lead: int, campaign: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                TOUCHES.insert().values(
                    lead_id=lead,
                    enrollment_id=self.enrolled[(lead, campaign)],
                    campaign=campaign,
                    campaign_version_id=self.versions[campaign],
                    step=f"s{next(self.n)}",
                    step_day=0,
                    channel="email",
                    status="sent",
                    due_at=at,
                    not_before=at,
                    sent_at=at,
                    created_at=at,
                    updated_at=at,
                )
            )

    def escalation(self, lead: int, at: datetime, closed: datetime, cents: int | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                ESCALATIONS.insert().values(
                    lead_id=lead,
                    trigger="sql_threshold",
                    trigger_key=f"k{next(self.n)}",
                    reasons=[],
                    status="closed_won",
                    rep_key="ana",
                    amount_cents=cents,
                    closed_at=closed,
                    created_at=at,
                    updated_at=closed,
                )
            )

    def deal(self, lead: int, status: str, closed: datetime, cents: int, currency: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                CRM_DEALS.insert().values(
                    crm="hubspot",
                    crm_id=f"d{next(self.n)}",
                    lead_id=lead,
                    status=status,
                    amount_cents=cents,
                    currency=currency,
                    opened_at=closed - 5 * D,
                    closed_at=closed,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )

    def stage(self, lead: int, to: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                STAGE_CHANGES.insert().values(
                    lead_id=lead,
                    from_stage="mql",
                    to_stage=to,
                    score=60,
                    reason="t",
                    changed_at=at,
                )
            )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "spend.yaml").write_text(SPEND)
    return tmp_path


def _world(engine: Engine) -> None:
    s = Sales(engine)
    # L1: CRM won 10,000 (its rep's close of 9.99 is not counted); 2 messages before the
    # hand-off (educate, promo), 3 before the win; cycle 30 days
    l1 = s.lead("google-ads", NOW - 40 * D, "educate", "promo")
    s.sent(l1, "educate", NOW - 35 * D)
    s.sent(l1, "promo", NOW - 34 * D)
    s.sent(l1, "educate", NOW - 20 * D)
    s.escalation(l1, NOW - 30 * D, NOW - 12 * D, 999)
    s.deal(l1, "won", NOW - 10 * D, 1_000_000, "USD")
    s.stage(l1, "sql", NOW - 31 * D)
    # L2: no CRM deal, the rep closed it won 5,000; 1 message before; cycle 40 days
    l2 = s.lead("google-ads", NOW - 50 * D, "educate")
    s.sent(l2, "educate", NOW - 45 * D)
    s.escalation(l2, NOW - 40 * D, NOW - 10 * D, 500_000)
    # L3: the rep closed it won, the CRM deal is lost: not a customer
    l3 = s.lead("webinar", NOW - 20 * D, "educate")
    s.escalation(l3, NOW - 15 * D, NOW - 3 * D, 300_000)
    s.deal(l3, "lost", NOW - 3 * D, 300_000, "USD")
    # L4: CRM won in EUR (counted, not summed); never enrolled; cycle 95 days
    l4 = s.lead("webinar", NOW - 100 * D)
    s.deal(l4, "won", NOW - 5 * D, 200_000, "EUR")
    s.stage(l4, "customer", NOW - 5 * D)
    # L5: enrolled, qualified this month, not won; L6: won after `now`
    l5 = s.lead("google-ads", NOW - 5 * D, "educate")
    s.stage(l5, "sql", NOW - 2 * D)
    l6 = s.lead("webinar", NOW - 9 * D)
    s.deal(l6, "won", NOW + D, 100_000, "USD")
    s.stage(l6, "mql", NOW - 9 * D)
    # L7: imported at SQL (no stage change): qualified when created, 1 October
    s.lead("referral", NOW - 70 * D, stage="sql")
    s.lead("referral", NOW - 25 * D, stage="opportunity")  # 15 November


def test_revenue_figures_by_hand(engine: Engine, config_dir: Path) -> None:
    _world(engine)
    report = kpis.compute(engine, NOW, config_dir=config_dir)
    r = report.revenue
    assert (r.won_customers, r.won_deals, r.won_basis_crm, r.won_basis_escalation) == (3, 3, 2, 1)
    assert r.won_amount_total == 15_000 and r.won_other_currency == 1
    assert r.won_amount_average == 7_500
    assert r.cycle_median_days == pytest.approx(40) and r.cycle_p90_days == pytest.approx(84)
    assert r.touches_before_handoff_avg == 1.0 and r.touches_before_handoff_median == 1.0
    assert r.touches_before_win_avg == pytest.approx(4 / 3)
    assert (r.nurture_enrolled, r.nurture_customers, r.nurture_customer_conversion) == (4, 2, 0.5)

    sources = {s.source: s for s in report.revenue_by_source}
    g, w = sources["google-ads"], sources["webinar"]
    assert (g.leads, g.customers, g.won_amount, g.average_deal) == (3, 2, 15_000, 7_500)
    assert (g.cost_per_lead, g.cost_per_sale, g.lifetime_value) == (1_000, 1_500, 15_000)
    assert g.roi == pytest.approx(9.0)  # (2 x 15,000 - 3,000) / 3,000
    assert (g.basis_crm, g.basis_escalation) == (1, 1)
    assert (w.leads, w.customers, w.won_amount, w.lifetime_value) == (3, 1, None, 9_000)
    assert w.cost_per_sale == 2_000 and w.roi == pytest.approx(3.5)  # (9,000 - 2,000) / 2,000

    campaigns = {c.campaign: c for c in report.revenue_by_campaign}
    e, p = campaigns["educate"], campaigns["promo"]
    assert (e.enrolled, e.customers, e.customer_conversion) == (4, 2, 0.5)
    assert (e.won_amount, e.won_amount_split) == (15_000, 10_000)
    assert (p.enrolled, p.customers, p.won_amount, p.won_amount_split) == (1, 1, 10_000, 5_000)
    assert e.won_amount_split + p.won_amount_split == r.won_amount_total  # no double count

    months = {m.month: m for m in report.lead_velocity}
    assert len(report.lead_velocity) == 12 and report.lead_velocity[-1].month == "2026-12"
    assert (months["2026-09"].qualified, months["2026-10"].qualified) == (0, 2)
    assert months["2026-10"].growth_rate is None  # nothing the month before
    assert (months["2026-11"].qualified, months["2026-11"].growth_rate) == (3, 0.5)
    assert months["2026-12"].qualified == 2
    assert months["2026-12"].growth_rate == pytest.approx(-1 / 3)
    assert months["2026-12"].partial and not months["2026-11"].partial

    assert [(c.basis, c.cycle_days, c.campaigns) for c in report.won_customers] == [
        ("crm", 30.0, "educate, promo"),
        ("escalation", 40.0, "educate"),
        ("crm", 95.0, ""),
    ]

    sections = report_sections(report, StuckReport(now=NOW, threshold=0, findings=[]))
    figures = {row["name"]: row for row in sections["revenue"]}
    assert figures["won_amount_total"] == {
        "name": "won_amount_total",
        "value": 15000.0,
        "unit": "USD",
    }
    assert figures["cycle_median_days"]["unit"] == "d"
    assert figures["nurture_customer_conversion"]["unit"] == "ratio"
    assert {row["source"]: row["roi"] for row in sections["revenue_by_source"]}["webinar"] == 3.5
    assert sections["notes"][0]["note"] == "revenue_attribution"
    page = html.render(report, StuckReport(now=NOW, threshold=0, findings=[]))
    text = markdown(Report(kpis=report, stuck=StuckReport(now=NOW, threshold=0, findings=[])))
    for out in (page, text):
        assert "before the hand-off" in out and "Lead velocity rate" in out


def test_lifetime_value_config_errors_name_the_field(tmp_path: Path) -> None:
    (tmp_path / "spend.yaml").write_text("lifetime_value: {multiplier: -1}\n")
    with pytest.raises(ConfigError, match=r"lifetime_value\.multiplier"):
        load_lifetime_value(tmp_path)
    (tmp_path / "spend.yaml").write_text("lifetime_value: {per_source: {}}\n")
    with pytest.raises(ConfigError, match="multiplier"):
        load_lifetime_value(tmp_path)
    assert load_lifetime_value(tmp_path / "nowhere").multiplier == 1.0
