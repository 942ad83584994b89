"""Turn raw records from any source into leads: create, merge into an existing lead (see
leadops.intake.merge for the rules), or quarantine with reasons.

Records are processed in chunks: one query per chunk finds existing leads by email, phone
and CRM id, new leads are inserted in bulk, and every record that reaches a lead leaves a
row in `lead_source_records` (per-source history and the merge log).

A record with a bad field but a usable channel is imported without that field; the value
is kept, flagged, in `lead_field_issues` (open until a later record fills the field; see
leadops.intake.field_issues).
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
from leadops.intake.field_issues import issue_text, resolve_issues, store_issues
from leadops.intake.fit import score_fit
from leadops.intake.mapping import Mapped, SourceRules, count_unknown, map_values
from leadops.intake.merge import (
    ChunkPlan,
    LeadIndex,
    PendingLead,
    Target,
    create_lead,
    merge_record,
    record_data,
)
from leadops.intake.records import RawRecord, earlier_quarantine, quarantine
from leadops.intake.validate import LeadRecord, Outcome, normalise_record
from leadops.models import LEAD_SOURCE_RECORDS, LEADS
from leadops.models.properties import PropertiesConfig

log = logging.getLogger("leadops.intake")

INVALID_RECORD = "invalid_record"  # validation itself failed on this record
STORE_FAILED = "store_failed"  # the database refused the record (see import_each)
# The database refused the data itself (a constraint, a value it cannot store). Anything
# else (locked, connection lost) is the database's state, not the record's: it propagates.
REFUSED = (IntegrityError, DataError)
EXAMPLES = 3  # examples kept per reason


def _example(raw: RawRecord, details: list[str]) -> str:
    return f"{raw.source_ref}: {'; '.join(details)}"[:300]


@dataclass
class ImportReport:
    source: str
    read: int = 0
    created: int = 0
    merged: int = 0
    unchanged: int = 0  # CRM contacts read again with nothing intake maps changed
    quarantined: Counter[str] = field(default_factory=Counter)
    quarantined_records: int = 0
    flagged: Counter[str] = field(default_factory=Counter)  # imported with bad fields, by reason
    flagged_records: int = 0
    lead_ids: list[int] = field(default_factory=list)  # lead of each accepted record, in order
    # reason -> a few "where: what" lines, for quarantined and flagged records alike
    examples: dict[str, list[str]] = field(default_factory=dict)
    no_consent: int = 0  # leads created with consent on no channel
    unknown_industries: Counter[str] = field(default_factory=Counter)  # kept as given
    fit_rows: int = 0  # fit ledger rows written right after the import

    @property
    def quarantined_total(self) -> int:
        return self.quarantined_records

    def add(self, other: ImportReport) -> None:
        self.read += other.read
        self.created += other.created
        self.merged += other.merged
        self.unchanged += other.unchanged
        self.quarantined.update(other.quarantined)
        self.quarantined_records += other.quarantined_records
        self.flagged.update(other.flagged)
        self.flagged_records += other.flagged_records
        self.lead_ids.extend(other.lead_ids)
        for reason, lines in other.examples.items():
            self.note(reason, *lines)
        self.no_consent += other.no_consent
        self.unknown_industries.update(other.unknown_industries)
        self.fit_rows += other.fit_rows

    def note(self, reason: str, *lines: str) -> None:
        """Keep up to EXAMPLES example lines for `reason`."""
        kept = self.examples.setdefault(reason, [])
        kept.extend(lines[: max(0, EXAMPLES - len(kept))])


def _chunks(items: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _normalise(
    raw: RawRecord,
    mapped: Mapped,
    *,
    default_region: str,
    default_timezone: str,
    now: datetime,
    properties: PropertiesConfig | None,
) -> Outcome:
    """normalise_record of the mapped data, but an unexpected failure refuses this record
    only."""
    try:
        return normalise_record(
            mapped.data,
            default_region=default_region,
            default_timezone=default_timezone,
            now=now,
            properties=properties,
        )
    except Exception as exc:  # one record never stops the rest; it is kept with its error
        log.exception("validating %s failed", raw.source_ref)
        outcome = Outcome(record=None)
        outcome.reject(INVALID_RECORD, f"validation failed: {type(exc).__name__}: {exc}"[:500])
        return outcome


def _lead_id(target: Target) -> int:
    lead_id = target if isinstance(target, int) else target.id
    assert lead_id is not None, "a new lead is used before its insert gave it an id"
    return lead_id


def _insert_leads(session: Session, pending: list[PendingLead]) -> list[int]:
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


def _validate(
    chunk: list[RawRecord],
    *,
    default_region: str,
    default_timezone: str,
    now: datetime,
    consent_override: dict[str, bool] | None,
    mapped: list[Mapped],
    properties: PropertiesConfig | None = None,
) -> list[Outcome]:
    """Validate each record; one with problems found while reading is refused whole, and
    `consent_override` is applied to the others."""
    outcomes = [
        _normalise(
            raw,
            m,
            default_region=default_region,
            default_timezone=default_timezone,
            now=now,
            properties=properties,
        )
        for raw, m in zip(chunk, mapped, strict=True)
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
    return outcomes


def _load_matches(session: Session, outcomes: list[Outcome]) -> ChunkPlan:
    """One query for the existing leads the chunk's valid records may match."""
    valid = [o.record for o in outcomes if o.record is not None]
    emails = {r.email for r in valid if r.email}
    phones = {r.phone for r in valid if r.phone}
    crm_ids = {r.crm_id for r in valid if r.crm_id}
    plan = ChunkPlan(existing={}, index=LeadIndex())
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
            plan.existing[row["id"]] = row
            plan.index.add(row)
    return plan


def _history_entry(
    raw: RawRecord,
    outcome: Outcome,
    record: LeadRecord,
    mapped: Mapped,
    *,
    source: str,
    now: datetime,
) -> dict[str, Any]:
    """The record's history row (without its lead and action): the data as normalised,
    with the flagged values and the industry as given."""
    data = record_data(record)
    if mapped.industry_given is not None:
        data["_industry_given"] = issue_text(mapped.industry_given)
    if outcome.issues:
        data["_flagged"] = {i.field: issue_text(i.value) for i in outcome.issues}
    return {
        "source": source,
        "source_ref": raw.source_ref[:500],
        "data": data,
        "received_at": now,
    }


def _write(session: Session, plan: ChunkPlan, report: ImportReport, now: datetime) -> None:
    """Write the chunk: new leads, updated leads, history rows, then flagged fields."""
    if plan.pending:
        for item, new_id in zip(plan.pending, _insert_leads(session, plan.pending), strict=True):
            item.id = new_id
    for changed_id, values in plan.changed.items():
        session.execute(update(LEADS).where(LEADS.c.id == changed_id).values(**values))
    if plan.history:
        rows_out = []
        for target, values in plan.history:
            lead_id = _lead_id(target)
            rows_out.append({"changes": None, **values, "lead_id": lead_id})
            report.lead_ids.append(lead_id)
        session.execute(insert(LEAD_SOURCE_RECORDS), rows_out)
    if plan.filled:
        resolve_issues(session, plan.filled, now)
    if plan.flagged:
        store_issues(
            session,
            [(_lead_id(t), entry, issues, had) for t, entry, issues, had in plan.flagged],
            now,
        )


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
    rules: SourceRules | None = None,
) -> ImportReport:
    """Validate, de-duplicate, merge and store `records`; every record ends up in a lead
    (created or merged, with a history row) or in quarantine. Nothing is dropped.

    `consent_override` forces consent fields (a web form grants email consent only once
    it is confirmed, so it imports with {"email_consent": False}); `fill_only` limits
    what a record may change on an existing lead (see `merge_into`). `rules` maps the
    source's values before validation and, with fit rules, scores the leads after.
    """
    report = ImportReport(source=source)
    for chunk in _chunks(records, chunk_size):
        report.read += len(chunk)
        mapped = [map_values(raw.data, rules) for raw in chunk]
        outcomes = _validate(
            chunk,
            default_region=default_region,
            default_timezone=default_timezone,
            now=now,
            consent_override=consent_override,
            mapped=mapped,
            properties=rules.properties if rules is not None else None,
        )
        plan = _load_matches(session, outcomes)
        refused = [raw for raw, o in zip(chunk, outcomes, strict=True) if o.record is None]
        earlier = earlier_quarantine(session, source, refused)
        for raw, outcome, m in zip(chunk, outcomes, mapped, strict=True):
            record = outcome.record
            if record is None:
                report.quarantined.update(outcome.reasons)
                report.quarantined_records += 1
                for reason in outcome.reasons:
                    report.note(reason, _example(raw, outcome.details))
                quarantine(
                    session,
                    source=source,
                    raw=raw,
                    reasons=outcome.reasons,
                    details=outcome.details,
                    now=now,
                    earlier=earlier,
                )
                continue
            count_unknown(report.unknown_industries, m)
            entry = _history_entry(raw, outcome, record, m, source=source, now=now)
            if outcome.issues:
                report.flagged.update({i.reason for i in outcome.issues})
                report.flagged_records += 1
                for issue in outcome.issues:
                    report.note(issue.reason, _example(raw, [issue.detail]))
            match = plan.index.find(record)
            if match is None:
                create_lead(plan, record, outcome, entry, now)
                report.created += 1
                report.no_consent += not (
                    record.email_consent or record.whatsapp_consent or record.sms_consent
                )
            else:
                merge_record(plan, match, record, outcome, entry, now=now, fill_only=fill_only)
                report.merged += 1
        _write(session, plan, report, now)
        if rules is not None and rules.scoring is not None:  # the leads made or changed
            touched = [p.id for p in plan.pending if p.id is not None] + list(plan.changed)
            report.fit_rows += score_fit(session, touched, rules.scoring, now)
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
    rules: SourceRules | None = None,
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
        rules=rules,
    )


def import_in_savepoints(
    session: Session,
    records: Iterable[RawRecord],
    *,
    source: str,
    now: datetime,
    default_region: str,
    default_timezone: str,
    rules: SourceRules | None = None,
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
                rules=rules,
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
        rules=rules,
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
    rules: SourceRules | None = None,
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
                    rules=rules,
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
