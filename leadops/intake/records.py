"""Records as sources deliver them (`RawRecord`: the data and where it came from), and the
quarantine writer that keeps a refused record with its raw data and reasons: one
quarantine record per source row (same source, same place, same data), so a file read
again quarantines its bad rows once, not once per read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from leadops.models import QuarantinedRecord, QuarantineStatus


@dataclass(frozen=True)
class RawRecord:
    """One record as a source read it, with where it came from (e.g. `file.csv:17`)."""

    data: dict[str, object]
    source_ref: str
    problems: tuple[tuple[str, str], ...] = ()  # (reason, detail) found while reading


def jsonable(value: object) -> Any:
    """`value` as JSON can hold it, and PostgreSQL can store it (no NUL in text)."""
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")  # PostgreSQL cannot store NUL in text
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


Earlier = dict[str, list[QuarantinedRecord]]


def earlier_quarantine(session: Session, source: str, raws: list[RawRecord]) -> Earlier:
    """The quarantine records already kept for these rows' places, by source_ref."""
    refs = sorted({raw.source_ref for raw in raws})
    found: Earlier = {}
    if not refs:
        return found
    query = (
        select(QuarantinedRecord)
        .where(QuarantinedRecord.source == source)
        .where(col(QuarantinedRecord.source_ref).in_(refs))
    )
    for record in session.exec(query):
        found.setdefault(record.source_ref or "", []).append(record)
    return found


def quarantine(
    session: Session,
    *,
    source: str,
    raw: RawRecord,
    reasons: list[str],
    details: list[str],
    now: datetime,
    earlier: Earlier | None = None,
) -> QuarantinedRecord:
    """Keep a refused record with its source, raw data and reason codes. A row already
    kept (same source, place and data) is not kept twice: an open record gets the new
    reasons, a released or dropped one stays as it is. `earlier` holds what a batch read
    at once (earlier_quarantine); without it, this row's place is looked up."""
    data = {key: jsonable(value) for key, value in raw.data.items()}
    if earlier is None:
        earlier = earlier_quarantine(session, source, [raw])
    for kept in earlier.get(raw.source_ref, []):
        if kept.raw == data:
            if kept.status == QuarantineStatus.OPEN:
                kept.reasons = reasons
                kept.detail = "; ".join(details)
                session.add(kept)
            return kept
    record = QuarantinedRecord(
        source=source,
        source_ref=raw.source_ref,
        raw=data,
        reasons=reasons,
        detail="; ".join(details),
        created_at=now,
    )
    session.add(record)
    return record
