"""Work the quarantine: show a record, release it (re-validated, optionally corrected) into
the leads, or drop it. Nothing is deleted: a dropped record stays, marked `dropped`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from leadops.db import session_scope
from leadops.intake.importer import RawRecord, import_records
from leadops.intake.validate import normalise_record
from leadops.models import QuarantinedRecord, QuarantineStatus


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
    mapping: dict[str, str] | None = None,
) -> ReleaseResult:
    """Validate the record again (with `corrections` applied, foreign headers renamed by
    `mapping`); if it now passes, it becomes or merges into a lead and is marked
    released. If not, it stays open and the result says why."""
    with session_scope(engine) as session:
        record = _open_record(session, record_id)
        folded = {k.strip().lower(): v for k, v in (mapping or {}).items()}
        data: dict[str, object] = {
            folded.get(str(k).strip().lower(), str(k).strip().lower()): v
            for k, v in record.raw.items()
            if k != "_extra"
        }
        data.update(corrections or {})
        outcome = normalise_record(
            data, default_region=default_region, default_timezone=default_timezone, now=now
        )
        if outcome.record is None:
            return ReleaseResult(
                record_id, False, reasons=tuple(outcome.reasons), detail="; ".join(outcome.details)
            )
        report = import_records(
            session,
            [RawRecord(data=data, source_ref=f"quarantine:{record_id}")],
            source=record.source,
            now=now,
            default_region=default_region,
            default_timezone=default_timezone,
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
