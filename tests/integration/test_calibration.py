"""The calibration report on a generated history (seeded): one rule truly raises the
chance of a sale, another is noise; the report shows lift for the first only, scores
leads as they were before the hand-off, and groups them by decile, band and grade."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from leadops.models import ESCALATIONS, LEADS, SCORE_LEDGER, STAGE_CHANGES
from leadops.reporting import calibration, html
from leadops.reporting.kpi_figures import KpiReport, RuleLift
from leadops.reporting.lift import MIN_GROUP
from leadops.reporting.stuck import StuckReport

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LEADS_N = 400
CREATED, RULES_AT, HANDOFF, AFTER = NOW - 60 * DAY, NOW - 40 * DAY, NOW - 30 * DAY, NOW - 20 * DAY


def _ledger(lead_id: int, kind: str, rule: str, points: int, at: datetime) -> dict[str, object]:
    return {
        "lead_id": lead_id,
        "kind": kind,
        "rule": rule,
        "points": points,
        "reason": rule,
        "event_at": at,
        "created_at": at,
    }


def generate(engine: Engine, seed: int = 24) -> dict[str, int]:
    """Leads where `pricing_page` quadruples the chance of reaching sales and
    `email_open` changes nothing; converted leads book a meeting after the hand-off
    (which must not count), and one lead came in as SQL before any score."""
    rng = random.Random(seed)
    leads, ledger, changes, escalations = [], [], [], []
    counts = {"handed_off": 0}
    for lead_id in range(1, LEADS_N + 1):
        pricing, opened, senior = (rng.random() < 0.5 for _ in range(3))
        converted = rng.random() < (0.45 if pricing else 0.1)
        accepted = converted and rng.random() < 0.8
        won = accepted and rng.random() < 0.5
        leads.append(
            {
                "id": lead_id,
                "email": f"lead{lead_id}@example.com",
                "timezone": "UTC",
                "lifecycle_stage": "customer" if won else "sql" if converted else "lead",
                "score": 0,
                "email_consent": True,
                "whatsapp_consent": False,
                "band": None if lead_id % 10 == 0 else "hot" if pricing else "cold",
                "grade": None if lead_id % 10 == 0 else "A1" if senior else "C3",
                "created_at": CREATED,
                "updated_at": CREATED,
            }
        )
        ledger.append(_ledger(lead_id, "engagement", "subscribe", 5, CREATED))
        if senior:
            ledger.append(_ledger(lead_id, "fit", "senior-buyer", 15, CREATED))
        if pricing:
            ledger.append(_ledger(lead_id, "engagement", "pricing_page", 10, RULES_AT))
        if opened:
            ledger.append(_ledger(lead_id, "engagement", "email_open", 5, RULES_AT))
        if not converted:
            continue
        counts["handed_off"] += 1
        ledger.append(_ledger(lead_id, "engagement", "appointment_booked", 25, AFTER))
        changes.append(
            {
                "lead_id": lead_id,
                "from_stage": "mql",
                "to_stage": "sql",
                "score": 80,
                "reason": "score",
                "changed_at": HANDOFF,
            }
        )
        escalations.append(
            {
                "lead_id": lead_id,
                "trigger": "sql_threshold",
                "trigger_key": str(lead_id),
                "score": 80,
                "reasons": [],
                "status": "closed_won" if won else "acknowledged" if accepted else "open",
                "reroutes": 0,
                "acknowledged_at": HANDOFF + DAY if accepted else None,
                "created_at": HANDOFF,
                "updated_at": HANDOFF,
            }
        )
    imported = LEADS_N + 1  # came in at SQL: its fit row is written after its creation
    leads.append({**leads[0], "id": imported, "email": "imported@example.com"})
    leads[-1] |= {"lifecycle_stage": "sql", "created_at": HANDOFF, "updated_at": HANDOFF}
    ledger.append(_ledger(imported, "fit", "senior-buyer", 15, HANDOFF + DAY))
    with engine.begin() as conn:
        conn.execute(LEADS.insert(), leads)
        conn.execute(SCORE_LEDGER.insert(), ledger)
        conn.execute(STAGE_CHANGES.insert(), changes)
        conn.execute(ESCALATIONS.insert(), escalations)
    return counts


def _report(engine: Engine) -> KpiReport:
    report = KpiReport(now=NOW)
    with engine.connect() as conn:
        calibration.compute(conn, NOW, report)
    return report


def _lift(report: KpiReport, rule: str, outcome: str) -> RuleLift:
    (row,) = [r for r in report.rule_lift if r.rule == rule and r.outcome == outcome]
    return row


@pytest.fixture
def history(engine: Engine) -> tuple[KpiReport, dict[str, int]]:
    counts = generate(engine)
    return _report(engine), counts


def test_the_rule_that_predicts_sales_shows_lift_and_the_noise_rule_does_not(
    history: tuple[KpiReport, dict[str, int]],
) -> None:
    report, counts = history
    for outcome in ("sql", "sal", "customer"):
        good = _lift(report, "pricing_page", outcome)
        noise = _lift(report, "email_open", outcome)
        assert good.verdict == "lift", good
        assert good.lift_low is not None and good.lift_low > 1.0
        assert noise.verdict == "none", noise
        assert noise.lift_low is not None and noise.lift_high is not None
        assert noise.lift_low < 1.0 < noise.lift_high
    good = _lift(report, "pricing_page", "sql")
    assert good.fired + good.not_fired == LEADS_N
    assert good.fired_converted + good.not_fired_converted == counts["handed_off"]
    assert good.fired_conversion == good.fired_converted / good.fired
    # The meeting booked after the hand-off is no rule of the calibration.
    assert {r.rule for r in report.rule_lift} == {
        "senior-buyer",
        "subscribe",
        "pricing_page",
        "email_open",
    }


def test_leads_are_scored_before_their_hand_off_grouped_and_drawn(
    history: tuple[KpiReport, dict[str, int]],
) -> None:
    report, counts = history
    assert report.calibration_leads == LEADS_N
    assert report.calibration_not_scored == 1  # the lead imported as SQL
    deciles = [g for g in report.calibration if g.by == "decile"]
    assert sum(g.leads for g in deciles) == LEADS_N
    assert sum(g.sql for g in deciles) == counts["handed_off"]
    # Without the meeting booked after it (25 points), no score passes 35.
    assert max(g.score_max or 0 for g in deciles) == 35
    lowest, highest = deciles[0], deciles[-1]
    assert lowest.score_max is not None and highest.score_min is not None
    assert lowest.score_max < highest.score_min
    assert highest.rate("sal") > lowest.rate("sal")  # type: ignore[operator]
    bands = {g.group: g for g in report.calibration if g.by == "band"}
    assert list(bands) == ["cold", "hot", "(not graded)"]
    assert bands["hot"].rate("sql") > bands["cold"].rate("sql")  # type: ignore[operator]
    grades = [g.group for g in report.calibration if g.by == "grade"]
    assert grades == ["A1", "C3", "(not graded)"]
    assert bands["(not graded)"].leads == LEADS_N // 10
    assert all(g.few == (g.leads < MIN_GROUP) for g in report.calibration)

    # The HTML page draws the lift of each rule and the groups.
    page = html.render(report, StuckReport(now=NOW, threshold=0, findings=[]))
    assert "Lift of each scoring rule" in page and "Conversion by score decile" in page
    # pricing_page's interval on SAL, drawn with its numbers in the tooltip
    good = _lift(report, "pricing_page", "sal")
    assert f"pricing_page ({good.fired} leads) sal: {good.lift:.2f}x" in page
    assert "subscribe (400 leads)" in page and "sal: too few" in page
