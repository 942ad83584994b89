"""Unit tests for the report as data (leadops.reporting.report_data)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from leadops.reporting.kpi_figures import EscalationStats, FunnelStage, KpiReport, StepRates
from leadops.reporting.report_data import META, SECTION_NAMES, report_sections, unit_of
from leadops.reporting.stuck import StuckReport

NOW = datetime(2026, 12, 2, 9, tzinfo=UTC)


def sample() -> KpiReport:
    return KpiReport(
        now=NOW,
        leads_total=10,
        response_avg_hours=1363.0833333,
        response_within_day=0.25,
        funnel=[FunnelStage("lead", 6, 10, 0.4)],
        steps=[StepRates("educate", "day-1", 1, "email", 4, 3, 1, 0, 3, {"opened": 2})],
        escalations=EscalationStats(total=2, by_status={"open": 2}, ack_avg_minutes=12.5),
        sends_per_day=[(date(2026, 12, 1), 3)],
        never_followed_up_by_stage={"lead": 1},
    )


def test_every_field_of_the_report_lands_in_a_section() -> None:
    sections = report_sections(sample(), StuckReport(now=NOW, threshold=0, findings=[]))
    figures = {row["name"] for row in sections["kpis"]}
    for field in dataclasses.fields(KpiReport):
        if field.name in META:
            continue
        assert field.name in figures or SECTION_NAMES.get(field.name, field.name) in sections


def test_numbers_stay_numbers_with_their_unit() -> None:
    sections = report_sections(sample(), StuckReport(now=NOW, threshold=0, findings=[]))
    figures = {row["name"]: row for row in sections["kpis"]}
    assert figures["response_avg_hours"] == {
        "name": "response_avg_hours",
        "value": 1363.0833,
        "unit": "h",
    }
    assert figures["response_within_day"]["value"] == 0.25
    assert figures["score_avg"] == {"name": "score_avg", "value": None, "unit": "points"}
    assert sections["funnel"] == [{"stage": "lead", "current": 6, "reached": 10, "conversion": 0.4}]
    assert sections["steps"][0]["engagement_opened"] == 2
    escalations = {row["name"]: row["value"] for row in sections["escalations"]}
    assert escalations["ack_avg_minutes"] == 12.5 and escalations["by_status_open"] == 2
    assert sections["sends_per_day"] == [{"day": "2026-12-01", "sent": 3}]
    assert sections["never_followed_up_by_stage"] == [{"stage": "lead", "leads": 1}]


def test_units_follow_the_figure_names() -> None:
    names = ("x_hours", "y_minutes", "within_sla", "score_avg", "won_amount_total", "won")
    assert [unit_of(n, "EUR") for n in names] == ["h", "min", "ratio", "points", "EUR", "count"]
