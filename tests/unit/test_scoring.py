from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadops.core.configfile import ConfigError
from leadops.engagement.scoring import (
    Cap,
    Decay,
    EngagementRule,
    FitFacts,
    Reason,
    Thresholds,
    capped,
    classify_inbound,
    decay_delta,
    fit_adjustments,
    fit_points,
    is_pricing_url,
    load_scoring,
    next_stage,
    top_reasons,
)
from leadops.models.events import EventType
from tests.conftest import ROOT

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONFIG = load_scoring(ROOT / "config")


def test_the_default_engagement_points_are_the_documented_ones() -> None:
    points = {name: rule.points for name, rule in CONFIG.engagement.items()}
    assert points == {
        "subscribe": 5,
        "email_open": 5,
        "email_open_machine": 0,
        "email_click": 10,
        "whatsapp_read": 5,
        "pricing_page": 10,
        "reply": 15,
        "demo_requested": 25,
        "contact_request": 25,
        "appointment_booked": 25,
        "trial_started": 25,
        "appointment_cancelled": -5,
        "no_opens": -10,
        "unsubscribe": -25,
    }
    assert (CONFIG.thresholds.mql, CONFIG.thresholds.sql) == (40, 80)


def test_caps_limit_points_per_window_and_leave_a_note() -> None:
    rule = EngagementRule(points=5, caps=(Cap(max_points=15, per_days=7),))
    history = [(NOW - timedelta(days=1), 5), (NOW - timedelta(days=2), 5)]
    assert capped(rule, history, NOW).points == 5
    full = [*history, (NOW - timedelta(hours=1), 5)]
    award = capped(rule, full, NOW)
    assert award.points == 0 and "cap 15 per 7 days" in award.note
    old = [(NOW - timedelta(days=8), 5)] * 3
    assert capped(rule, old, NOW).points == 5
    partial = EngagementRule(points=10, caps=(Cap(max_points=15, per_days=7),))
    assert capped(partial, [(NOW, 10)], NOW).points == 5
    negative = EngagementRule(points=-5, caps=(Cap(max_points=0, per_days=7),))
    assert capped(negative, [(NOW, -5)] * 5, NOW).points == -5


def test_opens_alone_stay_below_the_sql_threshold_for_ever() -> None:
    rule = CONFIG.engagement["email_open"]
    history: list[tuple[datetime, int]] = []
    for hour in range(0, 24 * 365, 6):
        at = NOW + timedelta(hours=hour)
        history.append((at, capped(rule, history, at).points))
    assert (
        max(
            sum(p for when, p in history if end - timedelta(days=90) < when <= end)
            for end, _ in history
        )
        == 25
    )
    # The best profile (BANT answers are qualification, not profile: they count apart)
    best_fit = sum(
        r.points
        for r in CONFIG.fit
        if r.rule not in ("manager", "company-50-199") and r.when.properties is None
    )
    assert best_fit + 25 + 15 < CONFIG.thresholds.sql  # with WhatsApp reads too


def test_decay_halves_the_balance_every_half_life_after_the_grace_period() -> None:
    decay = Decay(inactive_after_days=14, half_life_days=30)
    last = NOW
    assert (
        decay_delta(
            balance=40, base=40, last_active=last, now=NOW + timedelta(days=14), decay=decay
        )
        == 0
    )
    assert (
        decay_delta(
            balance=40, base=40, last_active=last, now=NOW + timedelta(days=44), decay=decay
        )
        == -20
    )
    assert (
        decay_delta(
            balance=20, base=40, last_active=last, now=NOW + timedelta(days=44), decay=decay
        )
        == 0
    )
    assert (
        decay_delta(
            balance=20, base=40, last_active=last, now=NOW + timedelta(days=74), decay=decay
        )
        == -10
    )
    assert (
        decay_delta(
            balance=-10, base=-10, last_active=last, now=NOW + timedelta(days=99), decay=decay
        )
        == 0
    )


@pytest.mark.parametrize(
    ("current", "score", "expected"),
    [
        ("lead", 39, None),
        ("lead", 40, "mql"),
        ("subscriber", 85, "sql"),
        ("recycled", 45, "mql"),
        ("mql", 80, "sql"),
        ("mql", 10, None),
        ("sql", 10, None),
        ("sql", 200, None),
        ("opportunity", 200, None),
        ("customer", 200, None),
        ("unsubscribed", 200, None),
    ],
)
def test_stages_only_move_forward_and_never_out_of_sales_stages(
    current: str, score: int, expected: str | None
) -> None:
    assert next_stage(current, score, Thresholds(mql=40, sql=80)) == expected


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("STOP", EventType.OPTED_OUT),
        (" stop! ", EventType.OPTED_OUT),
        ("Unsubscribe", EventType.OPTED_OUT),
        ("baja", EventType.OPTED_OUT),
        ("ARRÊT", EventType.OPTED_OUT),
        ("start", EventType.RESUBSCRIBED),
        ("stop sending me the pdf please, just call", EventType.REPLIED),
        ("Yes, tuesday works", EventType.REPLIED),
        ("", EventType.REPLIED),
    ],
)
def test_inbound_messages_are_opt_outs_opt_ins_or_replies(body: str, kind: EventType) -> None:
    assert classify_inbound(CONFIG, {"Body": body}) == kind
    assert classify_inbound(CONFIG, {"Body": "", "ButtonPayload": body}) == kind


def test_pricing_pages_are_recognised_by_pattern() -> None:
    assert is_pricing_url(CONFIG, "https://northwind.example/pricing")
    assert is_pricing_url(CONFIG, "https://northwind.example/en/Pricing?x=1")
    assert is_pricing_url(CONFIG, "/plans/")
    assert not is_pricing_url(CONFIG, "https://northwind.example/blog/pricing-strategy")


def test_fit_rules_and_their_adjustments() -> None:
    lead = FitFacts(seniority="VP", industry="Software", country="GB", company_size=120)
    desired = fit_points(CONFIG, lead)
    assert desired == {
        "senior-buyer": 15,
        "company-50-199": 5,
        "target-industry": 5,
        "served-country": 5,
    }
    assert fit_adjustments(desired, desired) == {}
    assert fit_adjustments({"a": 5}, {"a": 5, "b": 10}) == {"b": -10}
    reasons = top_reasons([("a", 5), ("b", 15), ("c", -20), ("d", 10)], 2)
    assert reasons == [Reason("b", 15), Reason("d", 10)]
    assert [str(r) for r in reasons] == ["b +15", "d +10"]
    assert reasons[0].item() == {"reason": "b", "points": 15}


def test_a_broken_scoring_file_names_the_file_line_and_problem(tmp_path: Path) -> None:
    text = (ROOT / "config" / "scoring.yaml").read_text()
    (tmp_path / "scoring.yaml").write_text(
        text.replace("  reply: {points: 15}", "  replied: {points: 15}")
    )
    with pytest.raises(ConfigError) as error:
        load_scoring(tmp_path)
    assert "scoring.yaml" in str(error.value) and "replied" in str(error.value)
    (tmp_path / "scoring.yaml").write_text(text.replace("sql: 80", "sql: 30"))
    with pytest.raises(ConfigError, match="sql threshold"):
        load_scoring(tmp_path)
