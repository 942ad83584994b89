"""A synthetic history with a known truth, for tests, the demo and `leadops model
synthesize`. Set-based inserts: 5,000 leads take a second or two.

The truth (PARAMETERS, written into the model card's docs too):
- 5,000 leads created evenly over the 12 months before `end`;
- two true drivers, each doubling the odds: every step of seniority (junior, manager,
  director, vp, c_level, drawn evenly) and every pricing-page visit in the lead's first
  week (Poisson, mean 1.5);
- three pure-noise features: company size (log-uniform 10 to 10,000), industry (five,
  evenly) and email opens in the first week (Poisson, mean 3);
- the outcome (a rep accepted the lead: the escalation is acknowledged) within 30 days of
  the prediction date (7 days after creation), at a base rate of 8% (the intercept is
  solved for it); half of the accepted leads get a CRM deal, 40% of those won;
- a rule score that over-weights the noise: 10 points per email open, 5 per seniority
  step and 5 per pricing-page visit, recorded in the score ledger before the date;
- after the outcome, accepted leads click three more emails: information from after the
  prediction date that a leaking model would learn from.
With `independent=True` the outcome ignores every feature (the same 8% for all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.models import CRM_DEALS, ESCALATIONS, INBOX, LEADS, SCORE_LEDGER

SENIORITY = ("junior", "manager", "director", "vp", "c_level")
INDUSTRIES = ("software", "retail", "finance", "health", "manufacturing")
END = datetime(2026, 12, 1, tzinfo=UTC)
PARAMETERS: dict[str, Any] = {
    "leads": 5000,
    "months": 12,
    "base_rate": 0.08,
    "true_drivers": {"seniority": "odds x2 per step", "pricing_page_views": "odds x2 per visit"},
    "noise": ["company_size_log", "industry", "opens"],
    "pricing_visits_mean": 1.5,
    "opens_mean": 3.0,
    "rule_points": {"open": 10, "seniority_step": 5, "pricing_visit": 5},
    "after_days": 7,
    "window_days": 30,
}


@dataclass
class Synthesized:
    leads: int
    positives: int  # outcomes reached by `end` (later ones are not inserted)
    inbox_rows: int
    start: datetime
    end: datetime
    independent: bool


def _intercept(signal: np.ndarray, rate: float) -> float:
    """The intercept that makes the mean probability `rate` (bisection)."""
    low, high = -20.0, 5.0
    for _ in range(60):
        mid = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(mid + signal)))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _event(lead_id: int, key: str, at: datetime, kind: str, event: str, url: str | None) -> dict:
    source = "site" if event == "activity" else "sendgrid"
    payload: dict[str, Any] = {"properties": {"url": url}} if url else {"event": kind}
    return {
        "source": source,
        "kind": kind,
        "dedupe_key": key,
        "payload": payload,
        "received_at": at,
        "status": "processed",
        "lead_id": lead_id,
        "event": event,
        "processed_at": at,
    }


def _lead_rows(n: int, rng: np.random.Generator, end: datetime) -> tuple[list[dict], dict]:
    start = end - timedelta(days=365)
    created = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 365 * 86400, n))]
    draws: dict[str, Any] = {
        "level": rng.integers(0, len(SENIORITY), n),
        "visits": np.minimum(rng.poisson(PARAMETERS["pricing_visits_mean"], n), 8),
        "opens": np.minimum(rng.poisson(PARAMETERS["opens_mean"], n), 12),
        "size": np.round(10 ** rng.uniform(1, 4, n)).astype(int),
        "industry": rng.integers(0, len(INDUSTRIES), n),
        "created": created,
    }
    points: dict[str, int] = PARAMETERS["rule_points"]
    draws["rule"] = (
        points["open"] * draws["opens"]
        + points["seniority_step"] * draws["level"]
        + points["pricing_visit"] * draws["visits"]
    )
    rows = [
        {
            "email": f"synthetic-{i:05d}@example.com",
            "first_name": f"Lead{i}",
            "timezone": "UTC",
            "lifecycle_stage": "lead",
            "score": int(draws["rule"][i]),
            "seniority": SENIORITY[draws["level"][i]],
            "company_size": int(draws["size"][i]),
            "industry": INDUSTRIES[draws["industry"][i]],
            "source": "synthetic",
            "email_consent": False,
            "whatsapp_consent": False,
            "sms_consent": False,
            "created_at": created[i],
            "updated_at": created[i],
        }
        for i in range(n)
    ]
    return rows, draws


def _outcome(lead_id: int, rule: int, accepted: datetime, deal: bool, won: bool) -> dict:
    """A positive lead's acknowledged escalation, its clicks after it (information from
    after the prediction date) and maybe a CRM deal."""
    escalation = {
        "lead_id": lead_id,
        "trigger": "synthetic",
        "trigger_key": f"syn-{lead_id}",
        "score": rule,
        "reasons": [],
        "status": "acknowledged",
        "reroutes": 0,
        "acknowledged_at": accepted,
        "started_at": accepted - timedelta(hours=1),
        "created_at": accepted - timedelta(hours=1),
        "updated_at": accepted,
    }
    clicks = [
        _event(
            lead_id,
            f"syn:{lead_id}:c{k}",
            accepted + timedelta(hours=2 + k),
            "click",
            "clicked",
            None,
        )
        for k in range(3)
    ]
    deals = []
    if deal:
        opened = accepted + timedelta(days=2)
        deals.append(
            {
                "crm": "hubspot",
                "crm_id": f"syn-{lead_id}",
                "lead_id": lead_id,
                "status": "won" if won else "open",
                "amount_cents": 1_000_000,
                "opened_at": opened,
                "closed_at": opened + timedelta(days=20) if won else None,
                "created_at": opened,
                "updated_at": opened,
            }
        )
    return {"escalation": escalation, "clicks": clicks, "deals": deals}


def synthesize(
    engine: Engine,
    *,
    leads: int = PARAMETERS["leads"],
    end: datetime = END,
    seed: int = 26,
    independent: bool = False,
) -> Synthesized:
    """Insert the synthetic history into `engine`'s database (which should hold no other
    leads: their emails are synthetic-NNNNN@example.com)."""
    rng = np.random.default_rng(seed)
    rows, d = _lead_rows(leads, rng, end)
    signal = math.log(2) * (d["level"] + d["visits"])
    if independent:
        signal = np.zeros(leads)
    p = 1 / (1 + np.exp(-(_intercept(signal, PARAMETERS["base_rate"]) + signal)))
    positive = rng.uniform(0, 1, leads) < p
    delay_days = rng.uniform(0.5, PARAMETERS["window_days"] - 1, leads)
    deal, won = rng.uniform(0, 1, leads) < 0.5, rng.uniform(0, 1, leads) < 0.4
    after = timedelta(days=PARAMETERS["after_days"])
    with engine.begin() as connection:
        connection.execute(LEADS.insert(), rows)
        ids: dict[str, int] = {
            email: lead_id
            for email, lead_id in connection.execute(
                sa.select(LEADS.c.email, LEADS.c.id).where(LEADS.c.source == "synthetic")
            )
        }
        inbox, ledger, escalations, deals = [], [], [], []
        for i, row in enumerate(rows):
            lead_id, created = ids[row["email"]], row["created_at"]
            for k in range(int(d["visits"][i])):
                at = created + timedelta(hours=6 + 20 * k)
                url = "https://example.com/pricing"
                inbox.append(
                    _event(lead_id, f"syn:{lead_id}:p{k}", at, "page_view", "activity", url)
                )
            for k in range(int(d["opens"][i])):
                at = created + timedelta(hours=3 + 13 * k)
                inbox.append(_event(lead_id, f"syn:{lead_id}:o{k}", at, "open", "opened", None))
            ledger.append(
                {
                    "lead_id": lead_id,
                    "kind": "engagement",
                    "rule": "synthetic_rules",
                    "points": int(d["rule"][i]),
                    "reason": "synthetic rule score",
                    "event_at": created + after - timedelta(hours=1),
                    "created_at": created + after - timedelta(hours=1),
                }
            )
            if positive[i]:
                accepted = created + after + timedelta(days=float(delay_days[i]))
                outcome = _outcome(
                    lead_id, int(d["rule"][i]), accepted, bool(deal[i]), bool(won[i])
                )
                inbox.extend(outcome["clicks"])
                escalations.append(outcome["escalation"])
                deals.extend(outcome["deals"])
        # nothing happens after the history's end
        inbox = [row for row in inbox if row["received_at"] <= end]
        ledger = [row for row in ledger if row["created_at"] <= end]
        escalations = [row for row in escalations if row["acknowledged_at"] <= end]
        deals = [row for row in deals if row["opened_at"] <= end]
        for deal_row in deals:
            if deal_row["closed_at"] is not None and deal_row["closed_at"] > end:
                deal_row.update(status="open", closed_at=None)
        if inbox:
            connection.execute(INBOX.insert(), inbox)
        if ledger:
            connection.execute(SCORE_LEDGER.insert(), ledger)
        if escalations:
            connection.execute(ESCALATIONS.insert(), escalations)
        if deals:
            connection.execute(CRM_DEALS.insert(), deals)
    return Synthesized(
        leads, len(escalations), len(inbox), end - timedelta(days=365), end, independent
    )
