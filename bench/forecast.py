"""The campaign forecast on a large database: 100,000 leads, 14 and 30 days ahead.

1. Seeded leads (leadops.testing.scenario.seed_leads: email and WhatsApp consent, UTC,
   stage `lead`), nobody enrolled yet: the forecast plans every enrollment itself.
2. The same leads after one planning pass (enrolled, day-1 touches pending): the forecast
   reads the enrollments and touches in flight.
Each figure is the wall time of `leadops.nurture.forecast.forecast` on SQLite.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.report import machine_line, write_section
from leadops.core.db import make_engine, upgrade
from leadops.core.settings import Settings
from leadops.nurture.forecast import forecast
from leadops.nurture.plan import plan_all
from leadops.runtime import load_runtime
from leadops.testing.scenario import ROOT, seed_leads

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LEADS = int(os.environ.get("BENCH_FORECAST_LEADS", "100000"))


def _timed(runtime: object, days: int) -> tuple[float, int]:
    started = time.perf_counter()
    result = forecast(runtime, NOW, days)  # type: ignore[arg-type]
    return time.perf_counter() - started, result.total


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        settings = Settings(
            data_dir=Path(workdir) / "data",
            config_dir=ROOT / "config",
            templates_dir=ROOT / "templates",
            secret_key="bench-secret-key-0123456789",  # type: ignore[arg-type]
            _env_file=None,  # type: ignore[call-arg]
        )
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        seed_leads(engine, LEADS, NOW)
        runtime = load_runtime(settings, engine=engine)
        rows = []
        for days in (14, 30):
            seconds, total = _timed(runtime, days)
            rows.append(("nobody enrolled yet", days, seconds, total))
        plan_all(runtime, NOW)
        for days in (14, 30):
            seconds, total = _timed(runtime, days)
            rows.append(("after one planning pass", days, seconds, total))
        engine.dispose()
    lines = [
        f"## Campaign forecast ({LEADS:,} leads)",
        "",
        machine_line(),
        "",
        "| database | days | seconds | leads per second | messages forecast |",
        "|---|---:|---:|---:|---:|",
    ]
    for state, days, seconds, total in rows:
        lines.append(f"| {state} | {days} | {seconds:.1f} | {LEADS / seconds:,.0f} | {total:,} |")
        print(f"{state}, {days} days: {seconds:.1f} s, {total:,} messages", flush=True)
    write_section("forecast", "\n".join(lines))
