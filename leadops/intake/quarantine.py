"""Work the quarantine: show a record, release it (re-validated, optionally corrected) into
the leads, or drop it. Nothing is deleted: a dropped record stays, marked `dropped`.
A release reads the record with its source's rules, as the import did.

Files that cannot be read as CSV are quarantined as files: a copy of their bytes is kept
under `<data dir>/quarantine/files/`, with the reason. Releasing one reads the fixed file
(a replacement path, else the original path, else the kept copy with the current
config/intake.yaml) through the normal import; a dropped file is never imported.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from leadops.core.db import session_scope
from leadops.intake.csv_source import FileRejected
from leadops.intake.importer import REFUSED, STORE_FAILED, import_records
from leadops.intake.mapping import SourceRules, map_values
from leadops.intake.records import RawRecord
from leadops.intake.validate import normalise_record
from leadops.models import QUARANTINED_FILES, QuarantinedFile, QuarantinedRecord, QuarantineStatus

# A source's header mapping and value rules (leadops.intake.mapping.release_rules).
ReadAs = Callable[[str], tuple[dict[str, str], SourceRules]]


class QuarantineError(ValueError):
    """The record does not exist or is not open."""


@dataclass
class ReleaseResult:
    record_id: int
    released: bool
    lead_id: int | None = None
    action: str = ""  # created or merged
    reasons: tuple[str, ...] = ()
    detail: str = ""


def _open_record(session: Session, record_id: int) -> QuarantinedRecord:
    record = session.get(QuarantinedRecord, record_id)
    if record is None:
        raise QuarantineError(f"no quarantined record with id {record_id}")
    if record.status != QuarantineStatus.OPEN:
        raise QuarantineError(f"quarantined record {record_id} is already {record.status}")
    return record


def release(
    engine: Engine,
    record_id: int,
    *,
    now: datetime,
    default_region: str,
    default_timezone: str,
    corrections: dict[str, str] | None = None,
    read_as: ReadAs | None = None,
) -> ReleaseResult:
    """Validate the record again as its import did, with `corrections` applied: `read_as`
    gives, for the record's source, the header mapping that renames foreign headers and
    the rules that read its values and dates (leadops.intake.mapping.release_rules). If
    it now passes, it becomes or merges into a lead (fit scored by the rules) and is
    marked released. If not, it stays open and the result says why."""
    with session_scope(engine) as session:
        record = _open_record(session, record_id)
        mapping, rules = read_as(record.source) if read_as is not None else ({}, None)
        folded = {k.strip().lower(): v for k, v in (mapping or {}).items()}
        data: dict[str, object] = {
            folded.get(str(k).strip().lower(), str(k).strip().lower()): v
            for k, v in record.raw.items()
            if k != "_extra"
        }
        data.update(corrections or {})
        outcome = normalise_record(
            map_values(data, rules).data,
            default_region=default_region,
            default_timezone=default_timezone,
            now=now,
            properties=rules.properties if rules is not None else None,
        )
        if outcome.record is None:
            return ReleaseResult(
                record_id, False, reasons=tuple(outcome.reasons), detail="; ".join(outcome.details)
            )
        try:
            report = import_records(
                session,
                [RawRecord(data=data, source_ref=f"quarantine:{record_id}")],
                source=record.source,
                now=now,
                default_region=default_region,
                default_timezone=default_timezone,
                rules=rules,
            )
        except REFUSED as exc:  # still refused by the database
            session.rollback()
            problem = str(exc).splitlines()[0][:300]
            return ReleaseResult(
                record_id,
                False,
                reasons=(STORE_FAILED,),
                detail=f"the database refused it: {type(exc).__name__}: {problem}",
            )
        record.status = QuarantineStatus.RELEASED
        record.resolved_at = now
        session.add(record)
        return ReleaseResult(
            record_id,
            True,
            lead_id=report.lead_ids[0],
            action="created" if report.created else "merged",
        )


def drop(engine: Engine, record_id: int, *, now: datetime) -> None:
    """Mark an open record dropped: it will never become a lead, and it is kept."""
    with session_scope(engine) as session:
        record = _open_record(session, record_id)
        record.status = QuarantineStatus.DROPPED
        record.resolved_at = now
        session.add(record)


def file_store(data_dir: Path) -> Path:
    """Where quarantined files are kept."""
    return data_dir / "quarantine" / "files"


def quarantined_file(
    session: Session, checksum: str, *, status: QuarantineStatus | None = None
) -> QuarantinedFile | None:
    """The latest file-quarantine record of this content (with this status), if any."""
    query = select(QuarantinedFile).where(QuarantinedFile.checksum == checksum)
    if status is not None:
        query = query.where(QuarantinedFile.status == status)
    return session.exec(query.order_by(col(QuarantinedFile.id).desc())).first()


def quarantine_file(
    session: Session,
    path: Path,
    *,
    source: str,
    checksum: str,
    rejected: FileRejected,
    store: Path,
    now: datetime,
) -> QuarantinedFile:
    """Keep a copy of the file's bytes in `store` and record why it was refused. A file
    with the same content already open in quarantine gets the new reason instead."""
    record = quarantined_file(session, checksum, status=QuarantineStatus.OPEN)
    if record is None:
        store.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", path.name)[-120:] or "file"
        stored = store / f"{checksum[:16]}-{safe}"
        if not stored.exists():
            shutil.copyfile(path, stored)
        record = QuarantinedFile(
            source=source[:100],
            name=path.name[:500],
            path=str(path.resolve())[:1000],
            stored_path=str(stored.resolve())[:1000],
            checksum=checksum,
            size=stored.stat().st_size,
            reason=rejected.reason,
            detail=rejected.detail,
            created_at=now,
        )
    else:
        record.reason, record.detail = rejected.reason, rejected.detail
    session.add(record)
    session.flush()
    return record


def resolve_replaced(session: Session, path: Path, *, imported: str, now: datetime) -> int:
    """A file read from `path` imported: open quarantine records of earlier content at the
    same path are resolved by it (the operator fixed the file in place)."""
    result = session.execute(
        update(QUARANTINED_FILES)
        .where(QUARANTINED_FILES.c.path == str(path.resolve())[:1000])
        .where(QUARANTINED_FILES.c.status == QuarantineStatus.OPEN)
        .values(
            status=QuarantineStatus.RELEASED,
            resolved_at=now,
            resolution=f"replaced by the fixed file, imported: {imported}"[:1000],
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def open_file(session: Session, file_id: int) -> QuarantinedFile:
    record = session.get(QuarantinedFile, file_id)
    if record is None:
        raise QuarantineError(f"no quarantined file with id {file_id}")
    if record.status != QuarantineStatus.OPEN:
        raise QuarantineError(f"quarantined file {file_id} is already {record.status}")
    return record


def release_source(record: QuarantinedFile, replacement: Path | None) -> Path:
    """The file a release reads: the replacement, else the original path when it still
    exists, else the kept copy."""
    if replacement is not None:
        if not replacement.is_file():
            raise QuarantineError(f"{replacement}: no such file")
        return replacement
    original = Path(record.path)
    if original.is_file():
        return original
    stored = Path(record.stored_path)
    if not stored.is_file():
        raise QuarantineError(
            f"quarantined file {record.id}: neither {original} nor the kept copy {stored} "
            "exists; give the fixed file with --path"
        )
    return stored


def mark_file(
    engine: Engine, file_id: int, *, status: QuarantineStatus, resolution: str, now: datetime
) -> None:
    """Mark an open quarantined file released or dropped, saying how."""
    with session_scope(engine) as session:
        record = open_file(session, file_id)
        record.status = status
        record.resolution = resolution[:1000]
        record.resolved_at = now
        session.add(record)
