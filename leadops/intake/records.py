"""Records as sources deliver them (`RawRecord`: the data and where it came from), and the
quarantine writer that keeps a refused record with its raw data and reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from leadops.models import QuarantinedRecord


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


def quarantine(
    session: Session,
    *,
    source: str,
    raw: RawRecord,
    reasons: list[str],
    details: list[str],
    now: datetime,
) -> QuarantinedRecord:
    """Keep a refused record with its source, raw data and reason codes."""
    record = QuarantinedRecord(
        source=source,
        source_ref=raw.source_ref,
        raw={key: jsonable(value) for key, value in raw.data.items()},
        reasons=reasons,
        detail="; ".join(details),
        created_at=now,
    )
    session.add(record)
    return record
