"""Speed to lead (per rep and source) and sales outcomes in the report, from escalations
inserted with known times and endings."""

from __future__ import annotations

import itertools
import json
import random
import statistics
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from leadops.models import ESCALATIONS
from leadops.reporting import html, kpis, sales_kpis
from leadops.reporting.kpi_figures import KpiReport, OutcomeReason, SalesOutcomes, SpeedToLead
from leadops.reporting.report import Report, markdown
from leadops.reporting.report_data import report_sections
from leadops.reporting.stuck import StuckReport
from tests.integration.test_report import NOW, World

M = timedelta(minutes=1)
H = timedelta(hours=1)
DAY = timedelta(days=1)


class Sales(World):
    """A World that also hands leads to sales, one escalation row at a time."""

    keys = itertools.count(1)

    def escalation(
        self,
        lead_id: int,
        *,
        status: str = "acknowledged",
        started: datetime | None,
        created: datetime | None = None,
        contacted: datetime | None = None,
        by: str | None = None,
        rep: str | None = None,
        trigger: str = "sql_threshold",
        reason: str | None = None,
        amount_cents: int | None = None,
        retry: datetime | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    ESCALATIONS.insert().values(
                        lead_id=lead_id,
                        trigger=trigger,
                        trigger_key=f"key-{next(self.keys)}",
                        reasons=[],
                        status=status,
                        rep_key=rep,
                        queue="inbound" if rep is None else None,
                        started_at=started,
                        first_contact_at=contacted,
                        first_contact_by=by,
                        first_contact_channel="call" if contacted else None,
                        outcome_reason=reason,
                        amount_cents=amount_cents,
                        retry_at=retry,
                        created_at=created or started or NOW,
                        updated_at=NOW,
                    )
                ).inserted_primary_key[0]
            )

    def contacted(
        self, by: str, source: str | None, minutes: float, *, rep: str = "", **values: object
    ) -> int:
        """An escalation of a new lead, held by `rep` (else `by`), contacted by `by`
        `minutes` after its start."""
        start = NOW - DAY
        lead = self.lead("sql", start - DAY, source=source)  # type: ignore[arg-type]
        return self.escalation(
            lead, started=start, contacted=start + minutes * M, by=by, rep=rep or by, **values
        )


@pytest.fixture
def sales(engine: Engine) -> Sales:
    return Sales(engine)


def _sales_report(engine: Engine) -> KpiReport:
    report = KpiReport(now=NOW)
    with engine.connect() as conn:
        sales_kpis.speed_to_lead(conn, engine.dialect.name, NOW, report)
        sales_kpis.outcomes(conn, NOW, report)
    return report


def _groups(report: KpiReport) -> dict[tuple[str, str], SpeedToLead]:
    return {(s.by, s.key): s for s in report.speed_to_lead}


def test_speed_to_lead_median_and_p90_per_rep_and_source(sales: Sales) -> None:
    # One lead escalated twice: each escalation is its own hand-off, timed from its own
    # start (the lead's creation when it reached SQL, the hand-raise the second time).
    twice = sales.lead("sql", NOW - 3 * DAY, source="web")
    sales.escalation(
        twice,
        status="recycled",
        started=NOW - 3 * DAY,
        contacted=NOW - 3 * DAY + 10 * M,
        by="ana",
        rep="ana",
    )
    sales.escalation(
        twice,
        trigger="demo_requested",
        started=NOW - 5 * H,
        created=NOW - 5 * H + M,
        contacted=NOW - 5 * H + 40 * M,
        by="ana",
        rep="ana",
    )
    sales.contacted("ana", "web", 20)
    sales.contacted("ana", "ads", 30)
    # Held by cleo now (re-routed after ben's call): the first contact is ben's.
    sales.contacted("ben", "ads", 60, rep="cleo")
    # No start recorded: timed from the escalation's own creation.
    no_start = sales.lead("sql", NOW - 2 * DAY, source=None)  # type: ignore[arg-type]
    sales.escalation(
        no_start, started=None, created=NOW - 4 * H, contacted=NOW - 4 * H + 2 * H, by="ben"
    )
    # Not contacted yet: two waiting for a rep (ben's, one in the fallback queue), one
    # acknowledged but not contacted; one closed without a contact ever logged.
    waiting = [
        ("open", "ben", None, NOW - 5 * H),
        ("rerouted", None, "ads", NOW - 30 * M),
        ("acknowledged", "ana", "web", NOW - 2 * H),
        ("closed_lost", "ana", "web", NOW - 9 * DAY),
    ]
    for status, rep, source, started in waiting:
        lead = sales.lead("sql", started, source=source)  # type: ignore[arg-type]
        sales.escalation(lead, status=status, rep=rep, started=started)

    groups = _groups(_sales_report(sales.engine))
    assert list(groups) == [
        ("all", "all"),
        ("rep", "(queue)"),
        ("rep", "ana"),
        ("rep", "ben"),
        ("source", "(none)"),
        ("source", "ads"),
        ("source", "web"),
    ]
    # Minutes to first contact: ana 10, 20, 30, 40; ben 60, 120. Percentiles interpolate
    # between ranks: p90 of ana's four is at rank 2.7, 30 + 0.7 * (40 - 30).
    expected = {
        ("all", "all"): (6, 35.0, 90.0),  # p90 at rank 4.5: 60 + 0.5 * 60
        ("rep", "ana"): (4, 25.0, 37.0),
        ("rep", "ben"): (2, 90.0, 114.0),
        ("source", "web"): (3, 20.0, 36.0),  # 10, 20, 40
        ("source", "ads"): (2, 45.0, 57.0),  # 30, 60
        ("source", "(none)"): (1, 120.0, 120.0),
        ("rep", "(queue)"): (0, None, None),
    }
    for key, (contacted, median, p90) in expected.items():
        figures = groups[key]
        assert figures.contacted == contacted, key
        assert figures.median_minutes == (None if median is None else pytest.approx(median)), key
        assert figures.p90_minutes == (None if p90 is None else pytest.approx(p90)), key
    waiting_by_group = {
        key: (g.waiting, g.oldest_waiting_hours, g.closed_uncontacted) for key, g in groups.items()
    }
    assert waiting_by_group == {
        ("all", "all"): (3, pytest.approx(5.0), 1),
        ("rep", "(queue)"): (1, pytest.approx(0.5), 0),
        ("rep", "ana"): (1, pytest.approx(2.0), 1),
        ("rep", "ben"): (1, pytest.approx(5.0), 0),
        ("source", "(none)"): (1, pytest.approx(5.0), 0),
        ("source", "ads"): (1, pytest.approx(0.5), 0),
        ("source", "web"): (1, pytest.approx(2.0), 1),
    }


def test_percentiles_match_percentile_cont(sales: Sales) -> None:
    """Against Python's inclusive quantiles (PostgreSQL's percentile_cont), group sizes
    odd and even, one and many."""
    rng = random.Random(19)
    minutes = {rep: [rng.uniform(1, 600) for _ in range(n)] for rep, n in (("a", 1), ("b", 8))}
    minutes["c"] = [rng.uniform(1, 600) for _ in range(13)]
    for rep, values in minutes.items():
        for value in values:
            sales.contacted(rep, "web", value, status="closed_won")
    groups = _groups(_sales_report(sales.engine))
    everything = [v for values in minutes.values() for v in values]
    for key, values in [(("rep", rep), v) for rep, v in minutes.items()] + [
        (("all", "all"), everything)
    ]:
        p90 = (
            statistics.quantiles(values, n=10, method="inclusive")[8]
            if len(values) > 1
            else values[0]
        )
        assert groups[key].contacted == len(values)
        assert groups[key].median_minutes == pytest.approx(statistics.median(values), abs=1e-3)
        assert groups[key].p90_minutes == pytest.approx(p90, abs=1e-3)


def test_outcomes_by_reason_amounts_and_retries_from_none(sales: Sales) -> None:
    # Before any hand-off: no figures, no reasons, "-" for what cannot be measured.
    report = _sales_report(sales.engine)
    assert report.speed_to_lead == [SpeedToLead("all", "all")]
    assert report.outcomes == SalesOutcomes() and report.outcome_reasons == []
    assert kpis.speed_rows(report) == [
        {
            "by": "all",
            "rep or source": "",
            "contacted": 0,
            "median": "-",
            "p90": "-",
            "not contacted yet": 0,
            "oldest waiting": "-",
            "closed, never contacted": 0,
        }
    ]
    assert kpis.outcome_rows(report)[0]["note"] == "- USD total, - USD average"

    def closed(status: str, **values: object) -> int:
        lead = sales.lead("recycled", NOW - 10 * DAY)
        sales.escalation(lead, status=status, started=NOW - 10 * DAY, rep="ana", **values)
        return lead

    closed("closed_won", amount_cents=100_000)
    closed("closed_won", amount_cents=250_050)
    closed("closed_won")  # closed without an amount
    for reason in ("price", "price", "competitor", None):
        closed("closed_lost", reason=reason)
    closed("recycled", reason="timing", retry=NOW + 7 * DAY)  # scheduled
    closed("recycled", reason="researching", retry=NOW - DAY)  # due
    retried = closed("recycled", reason="timing", retry=NOW - 2 * DAY)
    sales.escalation(retried, trigger="retry_due", started=NOW - 2 * DAY, rep="ana")
    closed("recycled", reason="timing")  # no retry date
    closed("disqualified", reason="spam")
    closed("acknowledged")  # still open: no outcome

    report = _sales_report(sales.engine)
    assert report.outcomes == SalesOutcomes(
        won=3,
        won_amount_total=pytest.approx(3500.50),
        won_amount_average=pytest.approx(1750.25),
        won_without_amount=1,
        lost=4,
        not_ready=4,
        not_ready_retry_scheduled=1,
        not_ready_retry_due=1,
        disqualified=1,
    )
    assert report.outcome_reasons == [
        OutcomeReason("lost", "(none)", 1),
        OutcomeReason("lost", "competitor", 1),
        OutcomeReason("lost", "price", 2),
        OutcomeReason("not_ready", "researching", 1),
        OutcomeReason("not_ready", "timing", 3),
        OutcomeReason("disqualified", "spam", 1),
    ]
    rows = [(r["outcome"], r["reason"], r["escalations"]) for r in kpis.outcome_rows(report)]
    assert rows[:3] == [("won", "", 3), ("lost", "all", 4), ("lost", "(none)", 1)]
    assert kpis.outcome_rows(report)[0]["note"] == (
        "3,500.50 USD total, 1,750.25 USD average; 1 without an amount"
    )


def test_the_report_carries_speed_to_lead_and_outcomes(sales: Sales, tmp_path: Path) -> None:
    sales.contacted("ana", "web", 12, status="closed_won", amount_cents=990_000)
    sales.contacted("ana", "web", 30, status="closed_lost", reason="price")
    lead = sales.lead("sql", NOW - 3 * H, source="ads")
    sales.escalation(lead, status="open", rep="ben", trigger="demo_requested", started=NOW - 3 * H)
    report = kpis.compute(sales.engine, NOW, config_dir=tmp_path)
    stuck = StuckReport(now=NOW, threshold=0, findings=[])

    # JSON: numbers as numbers, durations with their unit in the name, None as null.
    sections = json.loads(json.dumps(report_sections(report, stuck)))
    speed = {(r["by"], r["key"]): r for r in sections["speed_to_lead"]}
    assert speed["all", "all"] == {
        "by": "all",
        "key": "all",
        "contacted": 2,
        "median_minutes": 21.0,
        "p90_minutes": 28.2,
        "waiting": 1,
        "oldest_waiting_hours": 3.0,
        "closed_uncontacted": 0,
    }
    assert speed["rep", "ben"]["median_minutes"] is None
    outcomes = {r["name"]: (r["value"], r["unit"]) for r in sections["outcomes"]}
    assert outcomes["won"] == (1, "count")
    assert outcomes["won_amount_total"] == (9900.0, "USD")
    assert outcomes["lost"] == (1, "count")
    assert sections["outcome_reasons"] == [{"outcome": "lost", "reason": "price", "escalations": 1}]

    # The tables (CLI, markdown artifact, HTML page).
    rows = {(r["by"], r["rep or source"]): r for r in kpis.speed_rows(report)}
    assert rows["all", ""] == {
        "by": "all",
        "rep or source": "",
        "contacted": 2,
        "median": "21.0 min",
        "p90": "28.2 min",
        "not contacted yet": 1,
        "oldest waiting": "3.0 h",
        "closed, never contacted": 0,
    }
    headline = {r["kpi"]: r for r in kpis.headline_rows(report)}
    assert headline["speed to lead (to a rep's first contact)"]["value"] == "21.0 min median"
    text = markdown(Report(kpis=report, stuck=stuck))
    assert "## Speed to lead" in text
    assert "| rep | ana | 2 | 21.0 min | 28.2 min | 0 | - | 0 |" in text
    assert "| won |  | 1 | 9,900.00 USD total, 9,900.00 USD average |" in text
    page = html.render(report, stuck)
    assert "<h2>Speed to lead</h2>" in page and "<h2>Sales outcomes</h2>" in page
    assert '<td>rep</td><td>ben</td><td class="num">0</td><td>-</td><td>-</td>' in page
    assert "<td>28.2 min</td>" in page and "<td>price</td>" in page
