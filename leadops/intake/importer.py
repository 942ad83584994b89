"""Turn raw records from any source into leads: create, merge into an existing lead, or
quarantine with reasons.

Records are processed in chunks: one query per chunk finds existing leads by email, phone
and CRM id, new leads are inserted in bulk, and every record that reaches a lead leaves a
row in `lead_source_records` (per-source history and the merge log).

Merge rules (dedupe by normalised email, then phone, then CRM id):
- the existing (oldest) lead keeps its id; the newer record only fills empty fields;
- a phone or CRM-id match only counts when the emails do not contradict each other
  (a shared switchboard number is not the same person);
- the lifecycle stage only moves forward in the funnel, except that `unsubscribed` always
  wins (an opt-out is honoured, never undone by intake);
- consent is never withdrawn by a merge: granted stays granted.

A record with a bad field but a usable channel is imported without that field; the value
is kept, flagged, in `lead_field_issues` (open until a later record fills the field).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session

from leadops.core.db import open_transaction, session_scope
from leadops.intake.validate import FieldIssue, LeadRecord, Outcome, normalise_record, seniority_of
from leadops.models import (
    FUNNEL_ORDER,
    LEAD_FIELD_ISSUES,
    LEAD_SOURCE_RECORDS,
    LEADS,
    LifecycleStage,
    QuarantinedRecord,
)

log = logging.getLogger("leadops.intake")

INVALID_RECORD = "invalid_record"  # validation itself failed on this record
STORE_FAILED = "store_failed"  # the database refused the record (see import_each)
# The database refused the data itself (a constraint, a value it cannot store). Anything
# else (locked, connection lost) is the database's state, not the record's: it propagates.
REFUSED = (IntegrityError, DataError)

# Fields a newer record may fill when the existing lead has none.
FILLABLE = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "company_size",
    "industry",
    "country",
    "crm_id",
)
LEAD_FIELDS = (*FILLABLE, "seniority", "timezone", "lifecycle_stage", "source")


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
    merged: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    quarantined_records: int = 0
    flagged: Counter[str] = field(default_factory=Counter)  # imported with bad fields, by reason
    flagged_records: int = 0
    lead_ids: list[int] = field(default_factory=list)  # lead of each accepted record, in order

    @property
    def quarantined_total(self) -> int:
        return self.quarantined_records

    def add(self, other: ImportReport) -> None:
        self.read += other.read
        self.created += other.created
        self.merged += other.merged
        self.quarantined.update(other.quarantined)
        self.quarantined_records += other.quarantined_records
        self.flagged.update(other.flagged)
        self.flagged_records += other.flagged_records
        self.lead_ids.extend(other.lead_ids)


def _chunks(items: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _jsonable(value: object) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")  # PostgreSQL cannot store NUL in text
    if value is None or isinstance(value, int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
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
        raw={key: _jsonable(value) for key, value in raw.data.items()},
        reasons=reasons,
        detail="; ".join(details),
        created_at=now,
    )
    session.add(record)
    return record


def _normalise(
    raw: RawRecord, *, default_region: str, default_timezone: str, now: datetime
) -> Outcome:
    """normalise_record, but an unexpected failure refuses this record only."""
    try:
        return normalise_record(
            raw.data, default_region=default_region, default_timezone=default_timezone, now=now
        )
    except Exception as exc:  # one record never stops the rest; it is kept with its error
        log.exception("validating %s failed", raw.source_ref)
        outcome = Outcome(record=None)
        outcome.reject(INVALID_RECORD, f"validation failed: {type(exc).__name__}: {exc}"[:500])
        return outcome


def _issue_text(value: str | None) -> str | None:
    return None if value is None else value.replace("\x00", "\\x00")


def _store_issues(
    session: Session,
    flagged: list[tuple[int, dict[str, Any], list[FieldIssue], set[str]]],
    now: datetime,
) -> None:
    """Record flagged fields per lead: (lead id, history entry, issues, fields the lead
    already had). An issue identical to an open one is not recorded twice; one whose field
    the lead already holds a value for is recorded as resolved."""
    lead_ids = sorted({lead_id for lead_id, *_ in flagged})
    open_now = {
        (lead_id, name, value)
        for lead_id, name, value in session.execute(
            select(
                LEAD_FIELD_ISSUES.c.lead_id, LEAD_FIELD_ISSUES.c.field, LEAD_FIELD_ISSUES.c.value
            )
            .where(LEAD_FIELD_ISSUES.c.lead_id.in_(lead_ids))
            .where(LEAD_FIELD_ISSUES.c.resolved_at.is_(None))
        )
    }
    rows = []
    for lead_id, entry, issues, filled in flagged:
        for issue in issues:
            value = _issue_text(issue.value)
            if (lead_id, issue.field, value) in open_now:
                continue
            open_now.add((lead_id, issue.field, value))
            rows.append(
                {
                    "lead_id": lead_id,
                    "field": issue.field[:64],
                    "value": value,
                    "reason": issue.reason,
                    "detail": _issue_text(issue.detail),
                    "source": entry["source"],
                    "source_ref": entry["source_ref"],
                    "created_at": now,
                    "resolved_at": now if issue.field in filled else None,
                }
            )
    if rows:
        session.execute(insert(LEAD_FIELD_ISSUES), rows)


def _resolve_issues(session: Session, filled: dict[str, set[int]], now: datetime) -> None:
    """A merge filled these fields on these leads: their open issues are resolved."""
    for name, lead_ids in filled.items():
        session.execute(
            update(LEAD_FIELD_ISSUES)
            .where(LEAD_FIELD_ISSUES.c.field == name)
            .where(LEAD_FIELD_ISSUES.c.lead_id.in_(sorted(lead_ids)))
            .where(LEAD_FIELD_ISSUES.c.resolved_at.is_(None))
            .values(resolved_at=now)
        )


def _lead_row(record: LeadRecord, now: datetime) -> dict[str, Any]:
    row = dict(vars(record))  # shallow: every field is a plain value
    row["created_at"] = record.created_at or now
    row["updated_at"] = now
    row["last_engaged_at"] = None
    row["email_consent_at"] = now if record.email_consent else None
    row["whatsapp_consent_at"] = now if record.whatsapp_consent else None
    row["unsubscribed_at"] = now if record.lifecycle_stage == LifecycleStage.UNSUBSCRIBED else None
    return row


def _record_data(record: LeadRecord) -> dict[str, Any]:
    """The record's non-empty fields, JSON-ready (its values are plain, or a datetime)."""
    return {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in vars(record).items()
        if v is not None and v != "" and v is not False
    }


def stage_after_merge(current: str, incoming: str) -> str:
    """The lifecycle stage after a merge: forward only; `unsubscribed` always wins."""
    if LifecycleStage.UNSUBSCRIBED in (current, incoming):
        return LifecycleStage.UNSUBSCRIBED
    if FUNNEL_ORDER.get(incoming, -1) > FUNNEL_ORDER.get(current, -1):
        return incoming
    return current


def merge_into(
    lead: dict[str, Any],
    record: LeadRecord,
    now: datetime,
    *,
    fill_only: frozenset[str] | None = None,
) -> dict[str, list[Any]]:
    """Apply `record` to the lead row `lead` in place; return {field: [old, new]} changed.

    With `fill_only` (an untrusted source such as a web form) only those empty fields are
    filled: stage, consent and unsubscribe are left as they are."""
    changes: dict[str, list[Any]] = {}

    def change(name: str, value: Any) -> None:
        if lead.get(name) != value:
            changes[name] = [_jsonable(lead.get(name)), _jsonable(value)]
            lead[name] = value

    for name in FILLABLE:
        value = getattr(record, name)
        allowed = fill_only is None or name in fill_only
        if allowed and lead.get(name) in (None, "") and value not in (None, ""):
            change(name, value)
    if "job_title" in changes and not lead.get("seniority"):
        change("seniority", seniority_of(lead["job_title"]))
    if fill_only is not None:
        if changes:
            lead["updated_at"] = now
        return changes
    stage = stage_after_merge(lead["lifecycle_stage"], record.lifecycle_stage)
    change("lifecycle_stage", stage)
    if stage == LifecycleStage.UNSUBSCRIBED and lead.get("unsubscribed_at") is None:
        change("unsubscribed_at", now)
    for channel in ("email", "whatsapp"):
        if getattr(record, f"{channel}_consent") and not lead[f"{channel}_consent"]:
            change(f"{channel}_consent", True)
            change(f"{channel}_consent_at", now)
    if changes:
        lead["updated_at"] = now
    return changes


@dataclass
class _Pending:
    """A lead being built in this chunk, before its insert gives it an id."""

    row: dict[str, Any]
    id: int | None = None


class _Index:
    """Leads by email, phone and CRM id: rows from the database and rows pending insert."""

    def __init__(self) -> None:
        self.email: dict[str, dict[str, Any]] = {}
        self.phone: dict[str, list[dict[str, Any]]] = {}
        self.crm: dict[str, list[dict[str, Any]]] = {}

    def add(self, row: dict[str, Any]) -> None:
        if row.get("email"):
            self.email.setdefault(row["email"], row)
        if row.get("phone"):
            self.phone.setdefault(row["phone"], []).append(row)
        if row.get("crm_id"):
            self.crm.setdefault(row["crm_id"], []).append(row)

    def find(self, record: LeadRecord) -> tuple[dict[str, Any], str] | None:
        if record.email and record.email in self.email:
            return self.email[record.email], "email"
        for key, table in (("phone", self.phone), ("crm_id", self.crm)):
            value = getattr(record, key)
            for row in table.get(value, []) if value else []:
                if not (record.email and row.get("email")):  # emails must not contradict
                    return row, key
        return None


def _lead_id(target: _Pending | int) -> int:
    lead_id = target if isinstance(target, int) else target.id
    assert lead_id is not None, "a new lead is used before its insert gave it an id"
    return lead_id


def _insert_leads(session: Session, pending: list[_Pending]) -> list[int]:
    """Insert new leads with one bulk statement; return their ids in order.

    PostgreSQL: the ids are drawn from the table's sequence first, then inserted
    explicitly (safe with concurrent writers). SQLite: its single writer holds the lock
    for the whole transaction and a rowid table without AUTOINCREMENT numbers new rows
    max(id)+1, +2, ..., which is checked after the insert.
    """
    rows = [p.row for p in pending]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        ids = list(
            session.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('leads', 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"n": len(rows)},
            ).scalars()
        )
        for row, lead_id in zip(rows, ids, strict=True):
            row["id"] = lead_id
        session.execute(insert(LEADS), rows)
        return ids
    if dialect != "sqlite":
        result = session.execute(
            insert(LEADS).returning(LEADS.c.id, sort_by_parameter_order=True), rows
        )
        return list(result.scalars())
    session.execute(insert(LEADS), rows)
    last = session.execute(select(func.max(LEADS.c.id))).scalar_one()
    first = last - len(rows) + 1
    check = select(LEADS.c.email, LEADS.c.phone).where(LEADS.c.id.in_([first, last]))
    got = {(email, phone) for email, phone in session.execute(check)}
    if got != {(rows[0]["email"], rows[0]["phone"]), (rows[-1]["email"], rows[-1]["phone"])}:
        raise RuntimeError("new lead ids are not consecutive; refusing to guess them")
    return list(range(first, last + 1))


def import_records(
    session: Session,
    records: Iterable[RawRecord],
    *,
    source: str,
    now: datetime,
    default_region: str,
    default_timezone: str,
    chunk_size: int = 1000,
    consent_override: dict[str, bool] | None = None,
    fill_only: frozenset[str] | None = None,
) -> ImportReport:
    """Validate, de-duplicate, merge and store `records`; every record ends up in a lead
    (created or merged, with a history row) or in quarantine. Nothing is dropped.

    `consent_override` forces consent fields (a web form grants email consent only once
    it is confirmed, so it imports with {"email_consent": False}); `fill_only` limits
    what a record may change on an existing lead (see `merge_into`).
    """
    report = ImportReport(source=source)
    for chunk in _chunks(records, chunk_size):
        report.read += len(chunk)
        outcomes = [
            _normalise(
                raw, default_region=default_region, default_timezone=default_timezone, now=now
            )
            for raw in chunk
        ]
        for raw, outcome in zip(chunk, outcomes, strict=True):
            if raw.problems:  # the row as read is unreliable: refused whole
                for issue in outcome.issues:
                    outcome.reject(issue.reason, issue.detail)
                outcome.issues = []
                for reason, detail in raw.problems:
                    outcome.reject(reason, detail)
                outcome.record = None
            if outcome.record is not None and consent_override:
                for name, value in consent_override.items():
                    setattr(outcome.record, name, value)

        valid = [o.record for o in outcomes if o.record is not None]
        emails = {r.email for r in valid if r.email}
        phones = {r.phone for r in valid if r.phone}
        crm_ids = {r.crm_id for r in valid if r.crm_id}
        index = _Index()
        existing: dict[int, dict[str, Any]] = {}
        if valid:
            rows = session.execute(
                select(LEADS)
                .where(
                    or_(
                        LEADS.c.email.in_(emails),
                        LEADS.c.phone.in_(phones),
                        LEADS.c.crm_id.in_(crm_ids),
                    )
                )
                .order_by(LEADS.c.id)
            ).mappings()
            for mapping in rows:
                row = dict(mapping)
                existing[row["id"]] = row
                index.add(row)

        pending: list[_Pending] = []
        pending_by_row: dict[int, _Pending] = {}
        changed: dict[int, dict[str, Any]] = {}  # existing lead id -> changed columns
        history: list[tuple[_Pending | int, dict[str, Any]]] = []
        flagged: list[tuple[_Pending | int, dict[str, Any], list[FieldIssue], set[str]]] = []
        filled: dict[str, set[int]] = {}  # field -> existing leads a merge filled it on
        for raw, outcome in zip(chunk, outcomes, strict=True):
            record = outcome.record
            if record is None:
                report.quarantined.update(outcome.reasons)
                report.quarantined_records += 1
                quarantine(
                    session,
                    source=source,
                    raw=raw,
                    reasons=outcome.reasons,
                    details=outcome.details,
                    now=now,
                )
                continue
            data = _record_data(record)
            if outcome.issues:
                data["_flagged"] = {i.field: _issue_text(i.value) for i in outcome.issues}
                report.flagged.update({i.reason for i in outcome.issues})
                report.flagged_records += 1
            entry = {
                "source": source,
                "source_ref": raw.source_ref[:500],
                "data": data,
                "received_at": now,
            }
            match = index.find(record)
            if match is None:
                new = _Pending(row=_lead_row(record, now))
                pending.append(new)
                pending_by_row[id(new.row)] = new
                index.add(new.row)
                history.append((new, {**entry, "action": "created", "matched_on": None}))
                if outcome.issues:
                    flagged.append((new, entry, outcome.issues, set()))
                report.created += 1
                continue
            row, matched_on = match
            # Fields the lead already holds a value for (a time zone or creation time is
            # always set, derived: those flags stay open).
            had = {i.field for i in outcome.issues if row.get(i.field) not in (None, "")}
            had -= {"timezone", "created_at"}
            before_email, before_phone, before_crm = (
                row.get("email"),
                row.get("phone"),
                row["crm_id"],
            )
            changes = merge_into(row, record, now, fill_only=fill_only)
            if (
                row.get("email") != before_email
                or row.get("phone") != before_phone
                or (row.get("crm_id") != before_crm)
            ):
                index.add(row)
            target: _Pending | int
            if "id" in row and row["id"] in existing:
                target = row["id"]
                if changes:
                    changed.setdefault(row["id"], {}).update(
                        {name: row[name] for name in (*changes, "updated_at")}
                    )
            else:
                target = pending_by_row[id(row)]
            if isinstance(target, int):
                for name in changes:
                    filled.setdefault(name, set()).add(target)
            if outcome.issues:
                flagged.append((target, entry, outcome.issues, had))
            history.append(
                (
                    target,
                    {
                        **entry,
                        "action": "merged",
                        "matched_on": matched_on,
                        "changes": changes or None,
                    },
                )
            )
            report.merged += 1

        if pending:
            for item, new_id in zip(pending, _insert_leads(session, pending), strict=True):
                item.id = new_id
        for changed_id, values in changed.items():
            session.execute(update(LEADS).where(LEADS.c.id == changed_id).values(**values))
        if history:
            rows_out = []
            for target, values in history:
                lead_id = _lead_id(target)
                rows_out.append({"changes": None, **values, "lead_id": lead_id})
                report.lead_ids.append(lead_id)
            session.execute(insert(LEAD_SOURCE_RECORDS), rows_out)
        if filled:
            _resolve_issues(session, filled, now)
        if flagged:
            _store_issues(
                session,
                [(_lead_id(t), entry, issues, had) for t, entry, issues, had in flagged],
                now,
            )
        session.flush()
    return report


def import_each(
    engine: Engine,
    records: Iterable[RawRecord],
    *,
    source: str,
    now: datetime,
    default_region: str,
    default_timezone: str,
) -> ImportReport:
    """Import records one transaction each: the fallback when a batch fails in the
    database. A record the database refuses (a constraint or a value it cannot store) is
    quarantined (`store_failed`, with the database's message); the others go in. Other
    database errors (locked, unreachable) propagate: nothing is quarantined for them."""
    return _import_one_by_one(
        records,
        attempt=lambda: session_scope(engine),
        keep=lambda: session_scope(engine),
        source=source,
        now=now,
        default_region=default_region,
        default_timezone=default_timezone,
    )


def import_in_savepoints(
    session: Session,
    records: Iterable[RawRecord],
    *,
    source: str,
    now: datetime,
    default_region: str,
    default_timezone: str,
) -> ImportReport:
    """Import `records` inside the session's transaction, which the caller commits: as one
    batch in a savepoint and, when the database refuses it, one savepoint per record, as
    `import_each` does with transactions (refused records are quarantined `store_failed`;
    other database errors propagate and leave the transaction to be rolled back)."""
    records = list(records)
    open_transaction(session)
    try:
        with session.begin_nested():
            return import_records(
                session,
                records,
                source=source,
                now=now,
                default_region=default_region,
                default_timezone=default_timezone,
            )
    except REFUSED as exc:
        log.warning(
            "the database refused a batch of %d %s records (%s); importing them one by one",
            len(records),
            source,
            str(exc).splitlines()[0][:300],
        )

    @contextmanager
    def savepoint() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    return _import_one_by_one(
        records,
        attempt=savepoint,
        keep=lambda: nullcontext(session),
        source=source,
        now=now,
        default_region=default_region,
        default_timezone=default_timezone,
    )


def _import_one_by_one(
    records: Iterable[RawRecord],
    *,
    attempt: Callable[[], AbstractContextManager[Session]],
    keep: Callable[[], AbstractContextManager[Session]],
    source: str,
    now: datetime,
    default_region: str,
    default_timezone: str,
) -> ImportReport:
    """Import each record in its own `attempt` scope (a transaction or a savepoint, rolled
    back when it raises); a record the database refuses is quarantined in a `keep` scope."""
    report = ImportReport(source=source)
    for raw in records:
        try:
            with attempt() as session:
                part = import_records(
                    session,
                    [raw],
                    source=source,
                    now=now,
                    default_region=default_region,
                    default_timezone=default_timezone,
                )
        except REFUSED as exc:  # this record's data, not the database
            problem = str(exc).splitlines()[0][:300]
            log.warning("the database refused %s: %s", raw.source_ref, problem)
            with keep() as session:
                quarantine(
                    session,
                    source=source,
                    raw=raw,
                    reasons=[STORE_FAILED],
                    details=[f"the database refused it: {type(exc).__name__}: {problem}"],
                    now=now,
                )
                session.flush()
            part = ImportReport(source=source, read=1, quarantined_records=1)
            part.quarantined[STORE_FAILED] += 1
        report.add(part)
    return report
