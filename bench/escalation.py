"""Escalation throughput: escalate + notify to the file outbox, SLA re-routes, routing decisions.

Runs on the embedded default (SQLite file, file outbox) with the shipped config/routing.yaml,
capacities raised so that every escalation goes to a rep rather than the fallback queue.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import insert

from bench.report import machine_line, write_section
from leadops.core.db import make_engine, upgrade
from leadops.core.settings import Settings
from leadops.models import LEADS
from leadops.runtime import load_escalation_runtime
from leadops.sales.escalation import escalate
from leadops.sales.routing import LeadProfile, Loads, load_routing, route
from leadops.sales.sla import check_slas
from leadops.views.escalations import preview_route

ROOT = Path(__file__).resolve().parent.parent
ESCALATIONS = 1000
DECISIONS = 100_000
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # a Tuesday: every shipped rep is in hours
COUNTRIES = ["GB", "DE", "US", "FR", "NL", "ES", "BR", "SE", "IE", "IN"]
INDUSTRIES = ["software", "retail", "manufacturing", "healthcare", "media", "logistics"]


def _settings(folder: Path) -> Settings:
    routing = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    for rep in routing["reps"]:
        rep["capacity"] = 100_000
    path = folder / "routing.yaml"
    path.write_text(yaml.safe_dump(routing))
    return Settings(
        data_dir=folder / "data",
        config_dir=ROOT / "config",
        templates_dir=ROOT / "templates",
        routing_file=path,
        secret_key="bench-secret-key-0123456789",  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )


def _leads(count: int) -> list[dict[str, object]]:
    return [
        {
            "email": f"buyer{n}@company{n % 400}.example",
            "first_name": f"Buyer{n}",
            "last_name": "Example",
            "company": f"Company {n % 400}",
            "phone": f"+4477009{n:05d}",
            "country": COUNTRIES[n % len(COUNTRIES)],
            "industry": INDUSTRIES[n % len(INDUSTRIES)],
            "timezone": "UTC",
            "lifecycle_stage": "sql",
            "score": 60 + n % 40,
            "email_consent": True,
            "whatsapp_consent": False,
            "created_at": NOW - timedelta(days=20),
            "updated_at": NOW - timedelta(days=20),
        }
        for n in range(count)
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = _settings(folder)
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(insert(LEADS), _leads(ESCALATIONS))
        runtime = load_escalation_runtime(settings, engine=engine)

        latencies: list[float] = []
        assigned: Counter[str] = Counter()
        started = time.perf_counter()
        for lead_id in range(1, ESCALATIONS + 1):
            begin = time.perf_counter()
            result = escalate(
                engine,
                lead_id,
                "demo_requested",
                f"bench-{lead_id}",
                80,
                [{"reason": "requested a demo", "points": 30}, "visited pricing twice"],
                NOW,
                runtime=runtime,
            )
            latencies.append(time.perf_counter() - begin)
            assigned[result.rep_key or "queue"] += 1
        escalate_seconds = time.perf_counter() - started
        files = len(list(settings.resolved_outbox_dir.rglob("escalations/*/t*.*")))

        started = time.perf_counter()
        sla = check_slas(runtime, NOW + timedelta(hours=1))
        sla_seconds = time.perf_counter() - started

        started = time.perf_counter()
        for lead_id in range(1, 201):
            preview_route(runtime, lead_id, NOW)
        db_route_rate = 200 / (time.perf_counter() - started)
        engine.dispose()

    routing = load_routing(ROOT / "config" / "routing.yaml")
    profiles = [
        LeadProfile(
            account_domain=f"company{n % 400}.example",
            country=COUNTRIES[n % len(COUNTRIES)],
            industry=INDUSTRIES[n % len(INDUSTRIES)],
            language=routing.language_of(COUNTRIES[n % len(COUNTRIES)]),
        )
        for n in range(1000)
    ]
    loads = Loads(open={}, recent={rep.key: 10 for rep in routing.reps})
    started = time.perf_counter()
    for n in range(DECISIONS):
        route(routing, profiles[n % 1000], now=NOW, loads=loads)
    decision_rate = DECISIONS / (time.perf_counter() - started)

    spread = ", ".join(f"{key} {n}" for key, n in sorted(assigned.items()))
    moved = sla.rerouted + sla.to_queue
    p50, p95 = statistics.median(latencies) * 1000, _pct(latencies, 0.95) * 1000
    rows = [
        (
            "escalate + notify (route, record, audit, hand-off, write .eml/.json)",
            f"{ESCALATIONS / escalate_seconds:,.0f} escalations/s "
            f"({escalate_seconds:.1f} s for {ESCALATIONS:,})",
        ),
        ("latency per escalation, p50 / p95", f"{p50:.1f} ms / {p95:.1f} ms"),
        ("notifications written to the outbox", f"{files:,}"),
        (
            f"SLA loop: {moved:,} overdue escalations re-routed, manager told",
            f"{moved / sla_seconds:,.0f} re-routes/s ({sla_seconds:.1f} s)",
        ),
        ("routing decisions, pure (`leadops.sales.routing.route`)", f"{decision_rate:,.0f}/s"),
        ("routing decisions with database loads (`escalations route`)", f"{db_route_rate:,.0f}/s"),
    ]
    table = "\n".join(f"| {what} | {result} |" for what, result in rows)
    markdown = f"""\
## Escalation

{machine_line()} Load average {load_before:.1f} at the start (the cores are shared, so
figures vary with other work). SQLite file, file outbox, the shipped
`config/routing.yaml` (capacities raised so nothing overflows to the queue),
{ESCALATIONS:,} leads across {len(COUNTRIES)} countries and 400 company domains, one
`escalate()` call per lead.

| Measure | Result |
|---|---|
{table}

Assignments: {spread}. Time from a webhook to the rep's notification: see "Webhook to rep
notification" (`./dev bench latency`).
"""
    write_section("escalation", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
