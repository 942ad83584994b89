"""Import 100,000 CSV rows into SQLite and into PostgreSQL; figures in docs/PERFORMANCE.md.

The file mixes what real exports contain: 2% duplicates (merged), 1% bad rows
(quarantined), phone numbers, names in capitals, `;` delimiters and a BOM. Every row
must end up as a lead, a merge or a quarantined record: the run fails otherwise.
PostgreSQL runs in a private schema that is dropped afterwards; it is skipped, with the
reason, when the server at LEADOPS_BENCH_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test) cannot be reached.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.report import machine_line, write_section
from leadops.core.db import make_engine, session_scope, upgrade
from leadops.intake.csv_source import import_csv_file
from leadops.intake.importer import ImportReport
from leadops.models import LEADS, QUARANTINE

ROWS = 100_000
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PG_URL = os.environ.get(
    "LEADOPS_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
STAGES = ["subscriber", "lead", "mql", "sql", "opportunity", "customer"]
TITLES = ["VP Sales", "Head of Marketing", "Engineer", "CEO", "Procurement Manager", ""]


def write_file(path: Path, rows: int) -> None:
    rng = random.Random(42)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        handle.write(
            "email;first_name;last_name;phone;company;job_title;company_size;industry;"
            "country;lifecycle_stage;email_consent;whatsapp_consent\n"
        )
        for i in range(rows):
            n = i
            roll = rng.random()
            if roll < 0.02 and i > 10:
                n = rng.randrange(0, i // 2)  # an earlier person again
            email = f"person{n}@company{n % 997}.example"
            if 0.02 <= roll < 0.03:
                email = f"broken{i}@@example"
            phone = f"+44 7400 {100000 + n % 899999}" if n % 3 == 0 else ""
            handle.write(
                f"{email};{'ANNA' if n % 5 == 0 else 'anna'};Smith-Jones;{phone};"
                f"Company {n % 997} Ltd;{TITLES[n % len(TITLES)]};{(n % 40) * 25};software;"
                f"{'GB' if n % 2 else 'DE'};{STAGES[n % len(STAGES)]};"
                f"{'true' if n % 2 else 'false'};false\n"
            )


Result = tuple[float, float, ImportReport]  # wall seconds, CPU seconds of this process


def run(engine: Engine, path: Path) -> Result:
    upgrade(engine)
    started, cpu = time.perf_counter(), time.process_time()
    with session_scope(engine) as session:
        report, _ = import_csv_file(
            session,
            path,
            source="csv:bench",
            now=NOW,
            default_region="GB",
            default_timezone="UTC",
        )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert report is not None
    with engine.connect() as conn:
        leads = conn.execute(sa.select(sa.func.count()).select_from(LEADS)).scalar_one()
        quarantined = conn.execute(sa.select(sa.func.count()).select_from(QUARANTINE)).scalar_one()
    accounted = report.created + report.merged + report.quarantined_total
    if report.read != ROWS or accounted != ROWS or leads != report.created:
        raise SystemExit(f"rows lost: read {report.read}, accounted {accounted}, leads {leads}")
    if quarantined != report.quarantined_total:
        raise SystemExit(
            f"quarantine has {quarantined} rows, report says {report.quarantined_total}"
        )
    return elapsed, cpu, report


def postgres(path: Path) -> Result | str:
    admin = make_engine(PG_URL)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        return f"skipped: PostgreSQL not reachable at {PG_URL} ({type(exc).__name__})"
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(admin.url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        return run(engine, path)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _line(name: str, result: Result | str) -> str:
    if isinstance(result, str):
        return f"| {name} | {result} | | | | | | |"
    elapsed, cpu, report = result
    return (
        f"| {name} | {elapsed:.1f} s | **{ROWS / elapsed:,.0f}** | {cpu:.1f} s | "
        f"{ROWS / cpu:,.0f} | {report.created:,} | {report.merged:,} | "
        f"{report.quarantined_total:,} |"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        write_file(path, ROWS)
        size = path.stat().st_size / 1e6
        print(f"wrote {ROWS:,} rows ({size:.1f} MB); importing into SQLite", flush=True)
        sqlite = run(make_engine(f"sqlite:///{tmp}/bench.db"), path)
        print(_line("SQLite", sqlite), flush=True)
        print("importing into PostgreSQL", flush=True)
        pg = postgres(path)
        print(_line("PostgreSQL", pg), flush=True)
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    write_section(
        "intake",
        f"""## Intake: CSV import

`./dev bench intake` imports one {ROWS:,}-row CSV file ({size:.1f} MB, `;`-delimited with
a BOM; about 2% of rows repeat an earlier person and merge, 1% have a broken email and go
to quarantine) in one transaction: validation (email-validator, phonenumbers, time-zone
derivation), dedupe and merge, bulk insert of the leads and of one per-source history
row each. The run fails unless every row is a lead, a merge or a quarantined record.

| database | wall time | rows/s | CPU time | rows/CPU-s | created | merged | quarantined |
|---|---|---|---|---|---|---|---|
{_line("SQLite (file, WAL)", sqlite)}
{_line("PostgreSQL (local server)", pg)}

Target: at least 5,000 rows/s on SQLite. CPU time is the importing process's own; the
wall time also counts waiting for a core, which on a shared machine (load average
{load} on {os.cpu_count()} cores during this run) can be most of it. On an idle core
the wall rate approaches the CPU rate.

{machine_line()}
""",
    )
