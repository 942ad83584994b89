"""Hostile and fuzzed CSV files never crash the import and never lose a row."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from leadops.core.db import session_scope
from leadops.intake.csv_source import FileRejected, import_csv_file, read_csv
from leadops.intake.importer import ImportReport
from leadops.intake.quarantine import release
from leadops.models import ImportedFile, Lead, QuarantinedRecord

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HEADER = "email,first_name,last_name,company,country\n"


def _import(engine: Engine, path: Path, **options: object) -> ImportReport:
    with session_scope(engine) as session:
        report, _ = import_csv_file(
            session,
            path,
            source=f"csv:{path.name}",
            now=NOW,
            default_region="US",
            default_timezone="UTC",
            **options,  # type: ignore[arg-type]
        )
    assert report is not None
    assert report.read == report.created + report.merged + report.quarantined_total
    return report


def _quarantined(engine: Engine) -> list[QuarantinedRecord]:
    with Session(engine) as session:
        return list(session.exec(select(QuarantinedRecord).order_by(col(QuarantinedRecord.id))))


def test_wrongly_encoded_lines_are_kept_readable_and_can_be_released(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(
        (HEADER + "a@x.io,Anna,Schmidt,Acme,DE\n").encode()
        + "b@x.io,Jürgen,Müller,Bäckerei,DE\n".encode("cp1252")
    )
    report = _import(engine, path)
    assert (report.created, report.quarantined_total) == (1, 1)
    [bad] = _quarantined(engine)
    assert bad.reasons == ["invalid_encoding"] and bad.raw["last_name"] == "Müller"
    result = release(engine, bad.id or 0, now=NOW, default_region="US", default_timezone="UTC")
    assert result.released and result.action == "created"
    with Session(engine) as session:
        assert session.exec(select(Lead.last_name).where(Lead.email == "b@x.io")).one() == "Müller"


def test_a_header_without_contact_columns_refuses_the_file_before_any_write(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.csv"
    path.write_text("Mail;Name\nc@x.io;Cy\nd@x.io;Di\n", encoding="utf-8-sig")
    with pytest.raises(FileRejected) as caught, session_scope(engine) as session:
        import_csv_file(
            session, path, source="csv", now=NOW, default_region="US", default_timezone="UTC"
        )
    assert caught.value.reason == "missing_columns"
    assert "found: Mail, Name" in caught.value.detail
    with Session(engine) as session:
        assert session.exec(select(ImportedFile)).all() == []
        assert session.exec(select(QuarantinedRecord)).all() == []
    # Mapped, the same file imports (file quarantine and its release: test_file_quarantine).
    report = _import(engine, path, mapping={"Mail": "email", "Name": "first_name"})
    assert report.created == 2


def test_mapped_semicolon_file_with_bom_imports(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "de.csv"
    path.write_text(
        "E-Mail;Vorname;Land\ne@x.io;EVA;de\nf@x.io;fritz;Germany\n", encoding="utf-8-sig"
    )
    report = _import(
        engine, path, mapping={"e-mail": "email", "VORNAME": "first_name", "Land": "country"}
    )
    assert report.created == 2 and report.quarantined_total == 0
    with Session(engine) as session:
        leads = session.exec(select(Lead).order_by(col(Lead.id))).all()
    assert leads[1].first_name == "Fritz" and leads[1].country == "DE"
    assert leads[0].first_name == "Eva"


def test_huge_fields_unclosed_quotes_and_formula_values(engine: Engine, tmp_path: Path) -> None:
    rows = [f"r{i}@x.io,Name{i},Last,Co,US" for i in range(40)]
    rows[3] = "r3@x.io," + "A" * 3_000_000 + ",Last,Co,US"
    rows[10] = 'r10@x.io,"Unclosed,Last,Co,US'
    rows[20] = "r20@x.io,=cmd|' /C calc'!A0,Last,@SUM(A1),US"
    rows[30] = "r30@x.io,Nul\x00Byte,Last,Co,US,extra,cells"
    path = tmp_path / "hostile.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    report = _import(engine, path)
    assert report.read == 40
    reasons = {q.source_ref: q.reasons for q in _quarantined(engine)}
    assert reasons == {
        "hostile.csv:5": ["field_too_long", "malformed_row"],
        "hostile.csv:12": ["malformed_row"],
        "hostile.csv:32": ["invalid_characters", "malformed_row"],
    }
    with Session(engine) as session:
        lead = session.exec(select(Lead).where(Lead.email == "r20@x.io")).one()
    assert lead.first_name == "=cmd|' /C calc'!A0" and lead.company == "@SUM(A1)"


def test_fuzzed_files_lose_no_row(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(20261201)
    junk = ['"', ";", ",", "\x00", "\t", "=", "\u202e", "ü", "  ", "\\", "'", "\r"]
    lines = []
    for i in range(300):
        cells = [f"z{i}@x.io"] + [
            "".join(rng.choice([*junk, "a", "b"]) for _ in range(rng.randint(0, 8)))
            for _ in range(rng.randint(0, 6))
        ]
        rng.shuffle(cells)
        lines.append(",".join(cells).replace("\r", "").encode())
    for i in rng.sample(range(300), 20):
        lines[i] += b"\xff\xfe"  # not UTF-8
    path = tmp_path / "fuzz.csv"
    path.write_bytes(HEADER.encode() + b"\n".join(lines) + b"\n")
    report = _import(engine, path)
    assert report.read >= 280
    with Session(engine) as session:
        text = json.dumps(
            [q.raw for q in session.exec(select(QuarantinedRecord))]
            + [lead.model_dump(mode="json") for lead in session.exec(select(Lead))],
            ensure_ascii=False,
        )
    missing = [i for i in range(300) if f"z{i}@x.io" not in text]
    assert missing == []


def test_100k_rows_stream_through_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(HEADER)
        for i in range(100_000):
            handle.write(f"user{i}@example.com,First,Last,Co {i % 100},US\n")
    count = 0
    for record in read_csv(path):
        assert not record.problems
        count += 1
    assert count == 100_000 and record.data["email"] == "user99999@example.com"
