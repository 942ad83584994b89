"""The merge rules: how a validated record matches an existing lead and what it may change,
and the plan of a chunk that applies them (new leads, merges, history, flagged fields),
built in memory before the importer writes it.

Dedupe by normalised email, then phone, then CRM id:
- the existing (oldest) lead keeps its id; the newer record only fills empty fields;
- a phone or CRM-id match only counts when the emails do not contradict each other
  (a shared switchboard number is not the same person);
- the lifecycle stage only moves forward in the funnel, except that `unsubscribed` always
  wins (an opt-out is honoured, never undone by intake);
- consent is never withdrawn by a merge: granted stays granted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadops.intake.records import jsonable
from leadops.intake.validate import FieldIssue, LeadRecord, Outcome, seniority_of
from leadops.models import FUNNEL_ORDER, LifecycleStage

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


def lead_row(record: LeadRecord, now: datetime) -> dict[str, Any]:
    row = dict(vars(record))  # shallow: every field is a plain value
    row["created_at"] = record.created_at or now
    row["updated_at"] = now
    row["last_engaged_at"] = None
    row["email_consent_at"] = now if record.email_consent else None
    row["whatsapp_consent_at"] = now if record.whatsapp_consent else None
    row["sms_consent_at"] = now if record.sms_consent else None
    row["unsubscribed_at"] = now if record.lifecycle_stage == LifecycleStage.UNSUBSCRIBED else None
    return row


def record_data(record: LeadRecord) -> dict[str, Any]:
    """The record's non-empty fields, JSON-ready (its values are plain, or a datetime)."""
    return {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in vars(record).items()
        if v is not None and v != "" and v is not False
    }


def merged_properties(
    current: dict[str, Any] | None, incoming: dict[str, Any], fill_only: frozenset[str] | None
) -> dict[str, Any] | None:
    """The lead's custom properties after a merge: a trusted source (CSV, CRM) sets those it
    carries; with `fill_only` (a web form) only the listed properties.NAME without a value
    are filled."""
    merged = dict(current or {})
    for name, value in incoming.items():
        if fill_only is None or (f"properties.{name}" in fill_only and merged.get(name) is None):
            merged[name] = value
    return merged or None


def _filled_fields(changes: dict[str, list[Any]]) -> list[str]:
    """The fields a merge gave a value, each custom property as properties.NAME (so the
    flag on that property resolves)."""
    names = [name for name in changes if name != "properties"]
    if "properties" in changes:
        old, new = ((value or {}) for value in changes["properties"])
        names += [f"properties.{key}" for key in new if old.get(key) != new[key]]
    return names


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
            changes[name] = [jsonable(lead.get(name)), jsonable(value)]
            lead[name] = value

    for name in FILLABLE:
        value = getattr(record, name)
        allowed = fill_only is None or name in fill_only
        if allowed and lead.get(name) in (None, "") and value not in (None, ""):
            change(name, value)
    if "job_title" in changes and not lead.get("seniority"):
        change("seniority", seniority_of(lead["job_title"]))
    if record.properties:
        change(
            "properties", merged_properties(lead.get("properties"), record.properties, fill_only)
        )
    if fill_only is not None:
        if changes:
            lead["updated_at"] = now
        return changes
    stage = stage_after_merge(lead["lifecycle_stage"], record.lifecycle_stage)
    change("lifecycle_stage", stage)
    if stage == LifecycleStage.UNSUBSCRIBED and lead.get("unsubscribed_at") is None:
        change("unsubscribed_at", now)
    for channel in ("email", "whatsapp", "sms"):
        if getattr(record, f"{channel}_consent") and not lead[f"{channel}_consent"]:
            change(f"{channel}_consent", True)
            change(f"{channel}_consent_at", now)
    if changes:
        lead["updated_at"] = now
    return changes


class LeadIndex:
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


@dataclass
class PendingLead:
    """A lead being built in this chunk, before its insert gives it an id."""

    row: dict[str, Any]
    id: int | None = None


# Where a record's history row and flagged fields go: an existing lead's id, or a new lead
# that has its id once inserted.
Target = PendingLead | int


@dataclass
class ChunkPlan:
    """What one chunk writes, built in memory before any of it is written."""

    existing: dict[int, dict[str, Any]]  # matching leads from the database, by id
    index: LeadIndex  # those, and the new leads of this chunk
    pending: list[PendingLead] = field(default_factory=list)  # new leads, in order
    pending_by_row: dict[int, PendingLead] = field(default_factory=dict)  # by id() of the row
    changed: dict[int, dict[str, Any]] = field(default_factory=dict)  # existing id -> columns
    history: list[tuple[Target, dict[str, Any]]] = field(default_factory=list)
    flagged: list[tuple[Target, dict[str, Any], list[FieldIssue], set[str]]] = field(
        default_factory=list
    )
    filled: dict[str, set[int]] = field(default_factory=dict)  # field -> existing leads filled


def create_lead(
    plan: ChunkPlan, record: LeadRecord, outcome: Outcome, entry: dict[str, Any], now: datetime
) -> None:
    """No lead matches: a new one, inserted with the others of the chunk."""
    new = PendingLead(row=lead_row(record, now))
    plan.pending.append(new)
    plan.pending_by_row[id(new.row)] = new
    plan.index.add(new.row)
    plan.history.append((new, {**entry, "action": "created", "matched_on": None}))
    if outcome.issues:
        plan.flagged.append((new, entry, outcome.issues, set()))


def merge_record(
    plan: ChunkPlan,
    match: tuple[dict[str, Any], str],
    record: LeadRecord,
    outcome: Outcome,
    entry: dict[str, Any],
    *,
    now: datetime,
    fill_only: frozenset[str] | None,
) -> None:
    """Merge the record into the lead it matched (an existing lead, or a new one of this
    chunk), noting the columns to update and the fields it filled."""
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
        plan.index.add(row)
    target: Target
    if "id" in row and row["id"] in plan.existing:
        target = row["id"]
        if changes:
            plan.changed.setdefault(row["id"], {}).update(
                {name: row[name] for name in (*changes, "updated_at")}
            )
    else:
        target = plan.pending_by_row[id(row)]
    if isinstance(target, int):
        for name in _filled_fields(changes):
            plan.filled.setdefault(name, set()).add(target)
    if outcome.issues:
        plan.flagged.append((target, entry, outcome.issues, had))
    plan.history.append(
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
