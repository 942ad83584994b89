"""What intake quarantined: records with their reasons, and files it could not read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from leadops.models import QuarantinedFile, QuarantinedRecord, QuarantineStatus


def record_rows(engine: Engine, *, status: str, source: str | None) -> list[dict[str, Any]]:
    """Quarantined records of one status (and source) by id, reasons joined, with the
    raw email."""
    query = select(QuarantinedRecord).where(col(QuarantinedRecord.status) == status)
    if source:
        query = query.where(col(QuarantinedRecord.source) == source)
    with Session(engine) as session:
        records = session.execute(query.order_by(QuarantinedRecord.id)).scalars().all()  # type: ignore[arg-type]
    return [
        {**r.model_dump(), "reasons": ", ".join(r.reasons), "email": r.raw.get("email")}
        for r in records
    ]


def record(engine: Engine, record_id: int) -> dict[str, Any] | None:
    """One quarantined record, every field (`raw` included) in the model's order, the same
    on every run; None if there is none."""
    with Session(engine) as session:
        found = session.get(QuarantinedRecord, record_id)
        if found is None:
            return None
        return {name: getattr(found, name) for name in QuarantinedRecord.model_fields}


def file_rows(engine: Engine, *, status: str) -> list[dict[str, Any]]:
    """Files quarantined as files, of one status, by id."""
    query = select(QuarantinedFile).where(col(QuarantinedFile.status) == status)
    with Session(engine) as session:
        return [r.model_dump() for r in session.exec(query.order_by(col(QuarantinedFile.id)))]


def open_file_count(engine: Engine) -> int:
    """How many quarantined files wait for a release or a drop."""
    with Session(engine) as session:
        query = select(func.count()).where(col(QuarantinedFile.status) == QuarantineStatus.OPEN)
        return int(session.exec(query.select_from(QuarantinedFile)).one())
