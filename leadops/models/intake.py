"""Intake tables: quarantined records and files, imported files, flagged field values,
per-source history and merges, pull cursors, and web-form submissions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from leadops.models.types import ts
from leadops.models.vocab import FormSubmissionStatus, QuarantineStatus


class QuarantinedRecord(SQLModel, table=True):
    """A record intake refused, kept with why, never silently dropped."""

    __tablename__ = "quarantine"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=100, index=True)
    source_ref: str | None = Field(default=None, max_length=500)
    raw: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    reasons: list[str] = Field(sa_type=sa.JSON, nullable=False)
    detail: str | None = None
    status: str = Field(default=QuarantineStatus.OPEN, max_length=20, index=True)
    created_at: datetime = ts(nullable=False)
    resolved_at: datetime | None = ts()


class ImportedFile(SQLModel, table=True):
    """A file intake has processed, by content checksum, so a re-dropped file is skipped."""

    __tablename__ = "imported_files"

    id: int | None = Field(default=None, primary_key=True)
    checksum: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=500)
    source: str = Field(max_length=100)
    rows_read: int = 0
    leads_created: int = 0
    leads_merged: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    rows_quarantined: int = 0
    imported_at: datetime = ts(nullable=False)


class QuarantinedFile(SQLModel, table=True):
    """A file intake could not read as CSV, kept with why: a copy of its bytes under the
    data folder (`stored_path`), releasable once the file or the configuration is fixed."""

    __tablename__ = "quarantined_files"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=100)
    name: str = Field(max_length=500)
    path: str = Field(max_length=1000)  # where it was read from
    stored_path: str = Field(max_length=1000)  # the kept copy
    checksum: str = Field(max_length=64, index=True)
    size: int = 0
    reason: str = Field(max_length=50)
    detail: str
    status: str = Field(default=QuarantineStatus.OPEN, max_length=20, index=True)
    resolution: str | None = None
    created_at: datetime = ts(nullable=False)
    resolved_at: datetime | None = ts()


class LeadFieldIssue(SQLModel, table=True):
    """A value a source gave for a lead that failed validation. The lead was imported for
    the channels it can be reached on; the value is kept here as given, flagged, until a
    later record fills that field (`resolved_at`)."""

    __tablename__ = "lead_field_issues"

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    field: str = Field(max_length=64)
    value: str | None = None
    reason: str = Field(max_length=50)
    detail: str | None = None
    source: str = Field(max_length=100)
    source_ref: str | None = Field(default=None, max_length=500)
    created_at: datetime = ts(nullable=False)
    resolved_at: datetime | None = ts(index=True)


class LeadSourceRecord(SQLModel, table=True):
    """One record a source delivered for a lead: per-source history, and the merge log.

    `action` is `created` (the record made the lead) or `merged` (it was merged into an
    existing lead, matched on `matched_on`); `changes` lists what the merge changed as
    {field: [old, new]}; `data` is the record as normalised.
    """

    __tablename__ = "lead_source_records"

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    source: str = Field(max_length=100, index=True)
    source_ref: str | None = Field(default=None, max_length=500)
    action: str = Field(max_length=20)
    matched_on: str | None = Field(default=None, max_length=20)
    changes: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    data: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    received_at: datetime = ts(nullable=False)


class IntakeCursor(SQLModel, table=True):
    """Where a pulling source (HubSpot) has read up to; advanced in the batch's transaction."""

    __tablename__ = "intake_cursors"

    source: str = Field(primary_key=True, max_length=100)
    state: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    updated_at: datetime = ts(nullable=False)


class FormSubmission(SQLModel, table=True):
    """A web-form submission, kept as consent evidence; UNIQUE per form and submission key."""

    __tablename__ = "form_submissions"
    __table_args__ = (
        sa.UniqueConstraint("form", "submission_key", name="uq_form_submissions_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    form: str = Field(max_length=100)
    submission_key: str = Field(max_length=128)
    lead_id: int | None = Field(default=None, foreign_key="leads.id", index=True)
    quarantine_id: int | None = Field(default=None, foreign_key="quarantine.id")
    email: str | None = Field(default=None, max_length=320)
    raw: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    status: str = Field(default=FormSubmissionStatus.PENDING, max_length=20)
    provider_id: str | None = Field(default=None, max_length=200)
    error: str | None = None
    submitted_at: datetime = ts(nullable=False)
    confirmation_sent_at: datetime | None = ts()
    confirmed_at: datetime | None = ts()
    confirmed_from: str | None = Field(default=None, max_length=200)


# Core table handles, for set-based statements that bypass the ORM's per-object overhead.
QUARANTINE = cast(sa.Table, QuarantinedRecord.__table__)  # type: ignore[attr-defined]
IMPORTED_FILES = cast(sa.Table, ImportedFile.__table__)  # type: ignore[attr-defined]
QUARANTINED_FILES = cast(sa.Table, QuarantinedFile.__table__)  # type: ignore[attr-defined]
LEAD_FIELD_ISSUES = cast(sa.Table, LeadFieldIssue.__table__)  # type: ignore[attr-defined]
LEAD_SOURCE_RECORDS = cast(sa.Table, LeadSourceRecord.__table__)  # type: ignore[attr-defined]
INTAKE_CURSORS = cast(sa.Table, IntakeCursor.__table__)  # type: ignore[attr-defined]
FORM_SUBMISSIONS = cast(sa.Table, FormSubmission.__table__)  # type: ignore[attr-defined]
