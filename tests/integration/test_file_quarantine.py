"""A file that cannot be read as CSV is quarantined as a file, kept, and releasable after a
fix; the other files are read, now and on every later run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from leadops.core.settings import Settings
from leadops.intake.config import IntakeConfig, load_intake_config
from leadops.intake.quarantine import QuarantineError, mark_file, release
from leadops.intake.run import release_file, run_intake
from leadops.models import ImportedFile, Lead, QuarantinedFile, QuarantinedRecord, QuarantineStatus
from leadops.runtime import build_runtime
from tests.conftest import ROOT

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
GOOD = "email,first_name\ngood1@x.io,Ann\ngood2@x.io,Ben\n"


def _config(**mapping: str) -> IntakeConfig:
    config = load_intake_config(ROOT / "config")
    config.csv.column_mapping = {**config.csv.column_mapping, **mapping}
    return config


def _inbox(settings: Settings) -> Path:
    folder = settings.data_dir / "inbox"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _files(engine: Engine) -> list[QuarantinedFile]:
    with Session(engine) as session:
        return list(session.exec(select(QuarantinedFile).order_by(col(QuarantinedFile.id))))


def _leads(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Lead)).one()


def test_bad_files_in_the_drop_folder_never_block_the_others(
    engine: Engine, settings: Settings
) -> None:
    inbox = _inbox(settings)
    (inbox / "a-stray-cr.csv").write_bytes(b"email,first\rname\nx@x.io,X\n")
    (inbox / "b-random.csv").write_bytes(bytes(range(256)) * 8)
    (inbox / "c-good.csv").write_text(GOOD)
    (inbox / "d-utf16.csv").write_bytes(GOOD.encode("utf-16"))
    config = _config()

    run = run_intake(engine, settings, now=NOW, sources=["csv"], config=config)
    assert run.errors == []
    by_source = {r.source: r for r in run.results}
    assert by_source["csv:c-good.csv"].report is not None
    assert by_source["csv:c-good.csv"].report.created == 2
    held = {r.source: r.quarantined_file for r in run.quarantined_files}
    assert {k: v.reason for k, v in held.items() if v} == {
        "csv:a-stray-cr.csv": "malformed_header",
        "csv:b-random.csv": "binary_file",
        "csv:d-utf16.csv": "invalid_encoding",
    }
    line = by_source["csv:a-stray-cr.csv"].file_line or ""
    assert "a-stray-cr.csv" in line and "carriage return" in line
    assert "release-file ID" not in line and "release-file" in line  # names the real id
    assert run.totals()["files_quarantined"] == 3
    for record in _files(engine):  # the bytes are kept, under the data folder
        stored = Path(record.stored_path)
        assert stored.is_relative_to(settings.data_dir.resolve())
        assert stored.read_bytes() == Path(record.path).read_bytes()
        assert record.status == QuarantineStatus.OPEN and record.detail

    # Later runs skip the quarantined files by content and read new files.
    (inbox / "e-new.csv").write_text("email\nnew@x.io\n")
    email = build_runtime(settings, engine=engine).email
    later = run_intake(
        engine, settings, now=NOW + timedelta(minutes=15), config=config, email=email
    )
    assert [r.source for r in later.results] == ["csv:e-new.csv"]
    assert later.quarantined_files == [] and _leads(engine) == 3

    # Fixed in place, the file is imported by the next run and its quarantine resolved.
    (inbox / "a-stray-cr.csv").write_text("email,first_name\nx@x.io,X\n")
    fixed = run_intake(
        engine, settings, now=NOW + timedelta(minutes=30), config=config, email=email
    )
    assert [(r.source, r.report and r.report.created) for r in fixed.results] == [
        ("csv:a-stray-cr.csv", 1)
    ]
    statuses = {f.name: (f.status, f.resolution or "") for f in _files(engine)}
    assert statuses["a-stray-cr.csv"][0] == QuarantineStatus.RELEASED
    assert "replaced by the fixed file" in statuses["a-stray-cr.csv"][1]
    assert statuses["b-random.csv"][0] == QuarantineStatus.OPEN


def test_duplicate_lead_columns_quarantine_the_file_naming_them(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "two-emails.csv"
    path.write_text("Email,Name,E-Mail\nwork@x.io,Ann,home@x.io\n")
    run = run_intake(engine, settings, now=NOW, files=[path], sources=["csv"], config=_config())
    [result] = run.results
    assert result.quarantined_file is not None
    assert result.quarantined_file.reason == "duplicate_columns"
    assert "columns 1 `Email` and 3 `E-Mail` both give `email`" in result.quarantined_file.detail
    assert result.report is None and _leads(engine) == 0  # neither value silently wins

    # Other repeated headers are no lead field: both values are kept under their positions.
    notes = tmp_path / "notes.csv"
    notes.write_text("email,notes,notes,\nn@x.io,first,second,third\n")
    run = run_intake(engine, settings, now=NOW, files=[notes], sources=["csv"], config=_config())
    assert run.quarantined_files == [] and run.results[0].note == ("unmapped columns: notes, notes")


def test_release_reads_the_kept_copy_with_the_fixed_mapping(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.csv"
    path.write_text("Mail;Vorname\nc@x.io;Cy\nd@x.io;Di\n", encoding="utf-8-sig")
    run = run_intake(engine, settings, now=NOW, files=[path], sources=["csv"], config=_config())
    [record] = [r.quarantined_file for r in run.quarantined_files]
    assert record is not None and record.reason == "missing_columns"
    path.unlink()  # the operator's copy is gone; the kept one is read

    still = release_file(engine, settings, _config(), record.id or 0, now=NOW)
    assert still.error is not None and "missing_columns" in still.error
    assert _files(engine)[0].status == QuarantineStatus.OPEN

    released = release_file(engine, settings, _config(Mail="email"), record.id or 0, now=NOW)
    assert released.error is None and released.report is not None
    assert released.report.created == 2
    [after] = _files(engine)
    assert after.status == QuarantineStatus.RELEASED and after.resolved_at == NOW
    with pytest.raises(QuarantineError, match="already released"):
        release_file(engine, settings, _config(), record.id or 0, now=NOW)


def test_release_with_a_replacement_path_and_drop(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"email,\xff\xfename\nz@x.io,Z\n")
    run = run_intake(engine, settings, now=NOW, files=[bad], sources=["csv"], config=_config())
    [record] = [r.quarantined_file for r in run.quarantined_files]
    assert record is not None and record.reason == "invalid_encoding"
    # The same bytes given again stay in quarantine: one record, skipped.
    again = run_intake(engine, settings, now=NOW, files=[bad], sources=["csv"], config=_config())
    assert again.results[0].skipped and len(_files(engine)) == 1

    fixed = tmp_path / "fixed.csv"
    fixed.write_text("email,name\nz@x.io,Z\n")
    result = release_file(engine, settings, _config(), record.id or 0, now=NOW, path=fixed)
    assert result.report is not None and result.report.created == 1
    with Session(engine) as session:
        assert session.exec(select(ImportedFile.name)).all() == ["fixed.csv"]

    dropped = tmp_path / "dropped.csv"
    dropped.write_bytes(b"\x00\x01\x02binary\n")
    inbox = _inbox(settings)
    (inbox / "dropped.csv").write_bytes(dropped.read_bytes())
    first = run_intake(engine, settings, now=NOW, sources=["csv"], config=_config())
    [held] = [r.quarantined_file for r in first.quarantined_files]
    assert held is not None and held.reason == "binary_file"
    mark_file(engine, held.id or 0, status=QuarantineStatus.DROPPED, resolution="junk", now=NOW)
    assert run_intake(engine, settings, now=NOW, sources=["csv"], config=_config()).results == []
    with pytest.raises(QuarantineError, match="already dropped"):
        release_file(engine, settings, _config(), held.id or 0, now=NOW)


def test_a_record_the_database_refuses_never_stops_its_file(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    # A rule the database enforces that validation knows nothing of (an operator's
    # constraint or trigger): the one row it refuses is quarantined, the others go in.
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "ALTER TABLE leads ADD CONSTRAINT no_refused "
                "CHECK (first_name IS NULL OR first_name <> 'Refused')"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER no_refused BEFORE INSERT ON leads "
                "WHEN NEW.first_name = 'Refused' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    path = tmp_path / "mixed.csv"
    path.write_text("email,first_name\na@x.io,Ann\nr@x.io,Refused\nb@x.io,Ben\n")
    [result] = run_intake(
        engine, settings, now=NOW, files=[path], sources=["csv"], config=_config()
    ).results
    assert result.error is None and result.report is not None
    report = result.report
    assert (report.read, report.created, report.quarantined_total) == (3, 2, 1)
    assert report.quarantined == {"store_failed": 1}
    with Session(engine) as session:
        [refused] = session.exec(select(QuarantinedRecord)).all()
        [imported] = session.exec(select(ImportedFile)).all()
    assert refused.raw == {"email": "r@x.io", "first_name": "Refused"}
    assert refused.reasons == ["store_failed"] and "refused it" in (refused.detail or "")
    assert (imported.rows_read, imported.leads_created, imported.rows_quarantined) == (3, 2, 1)
    assert _leads(engine) == 2
    # Imported again (--force), the refused row keeps its one record.
    run_intake(
        engine, settings, now=NOW, files=[path], sources=["csv"], config=_config(), force=True
    )
    with Session(engine) as session:
        assert [r.id for r in session.exec(select(QuarantinedRecord))] == [refused.id]
    # Released while the database still refuses it, it stays open with the reason.
    again = release(engine, refused.id or 0, now=NOW, default_region="US", default_timezone="UTC")
    assert not again.released and again.reasons == ("store_failed",)
    fixed = release(
        engine,
        refused.id or 0,
        now=NOW,
        default_region="US",
        default_timezone="UTC",
        corrections={"first_name": "Rita"},
    )
    assert fixed.released and _leads(engine) == 3
