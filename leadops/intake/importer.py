"""Turn raw records from any source into leads, or quarantine them with reasons.

Records are processed in chunks: one query per chunk finds existing leads by email and
phone, and new leads are inserted in bulk, so large files import quickly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice

from sqlalchemy import insert, or_, select
from sqlmodel import Session

from leadops.intake.validate import DUPLICATE, LeadRecord, normalise_record
from leadops.models import LEADS, QuarantinedRecord


@dataclass(frozen=True)
class RawRecord:
    """One record as a source read it, with where it came from (e.g. `file.csv:17`)."""

    data: dict[str, object]
    source_ref: str
    problems: tuple[tuple[str, str], ...] = ()  # (reason, detail) found while reading


@dataclass
class ImportReport:
    source: str
    read: int = 0
    created: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


def _chunks(items: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def quarantine(
    session: Session,
    *,
    source: str,
    raw: RawRecord,
    reasons: list[str],
    details: list[str],
    now: datetime,
) -> None:
    session.add(
        QuarantinedRecord(
            source=source,
            source_ref=raw.source_ref,
            raw={key: (None if value is None else str(value)) for key, value in raw.data.items()},
            reasons=reasons,
            detail="; ".join(details),
            created_at=now,
        )
    )


def _lead_row(record: LeadRecord, now: datetime) -> dict[str, object]:
    row = asdict(record)
    row["created_at"] = record.created_at or now
    row["updated_at"] = now
    row["last_engaged_at"] = None
    row["email_consent_at"] = now if record.email_consent else None
    row["whatsapp_consent_at"] = now if record.whatsapp_consent else None
    return row


def import_records(
    session: Session,
    records: Iterable[RawRecord],
    *,
    source: str,
    now: datetime,
    default_region: str,
    default_timezone: str,
    chunk_size: int = 1000,
) -> ImportReport:
    """Validate, de-duplicate and store `records`; every record ends up a lead or quarantined.

    A record whose email or phone already belongs to a lead (in the database or earlier in
    the same import) is quarantined as a duplicate naming that lead.
    """
    report = ImportReport(source=source)
    for chunk in _chunks(records, chunk_size):
        report.read += len(chunk)
        outcomes = [
            normalise_record(
                raw.data, default_region=default_region, default_timezone=default_timezone, now=now
            )
            for raw in chunk
        ]
        for raw, outcome in zip(chunk, outcomes, strict=True):
            for reason, detail in raw.problems:
                outcome.reject(reason, detail)
                outcome.record = None
        emails = {o.record.email for o in outcomes if o.record and o.record.email}
        phones = {o.record.phone for o in outcomes if o.record and o.record.phone}
        # email/phone -> who already has it ("lead 12" or "file.csv:17" earlier in this import)
        known_email: dict[str, str] = {}
        known_phone: dict[str, str] = {}
        if emails or phones:
            rows = session.execute(
                select(LEADS.c.id, LEADS.c.email, LEADS.c.phone).where(
                    or_(LEADS.c.email.in_(emails), LEADS.c.phone.in_(phones))
                )
            ).all()
            for lead_id, email, phone in rows:
                if email:
                    known_email[email] = f"lead {lead_id}"
                if phone:
                    known_phone[phone] = f"lead {lead_id}"

        new_rows: list[dict[str, object]] = []
        for raw, outcome in zip(chunk, outcomes, strict=True):
            record = outcome.record
            if record is not None:
                twin = (record.email and known_email.get(record.email)) or (
                    record.phone and known_phone.get(record.phone)
                )
                if twin:
                    what = "email" if record.email and record.email in known_email else "phone"
                    outcome.reject(DUPLICATE, f"same {what} as {twin}")
                    record = None
            if record is None:
                for reason in outcome.reasons:
                    report.quarantined[reason] += 1
                quarantine(
                    session,
                    source=source,
                    raw=raw,
                    reasons=outcome.reasons,
                    details=outcome.details,
                    now=now,
                )
                continue
            if record.email:
                known_email[record.email] = raw.source_ref
            if record.phone:
                known_phone[record.phone] = raw.source_ref
            new_rows.append(_lead_row(record, now))
        if new_rows:
            session.execute(insert(LEADS), new_rows)
            report.created += len(new_rows)
        session.flush()
    return report
