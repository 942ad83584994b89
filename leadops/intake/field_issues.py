"""Flagged field values: a value a source gave that failed validation is kept on the lead
in `lead_field_issues`, open until a later record fills that field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlmodel import Session

from leadops.intake.validate import FieldIssue
from leadops.models import LEAD_FIELD_ISSUES


def issue_text(value: str | None) -> str | None:
    return None if value is None else value.replace("\x00", "\\x00")


def store_issues(
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
            value = issue_text(issue.value)
            if (lead_id, issue.field, value) in open_now:
                continue
            open_now.add((lead_id, issue.field, value))
            rows.append(
                {
                    "lead_id": lead_id,
                    "field": issue.field[:64],
                    "value": value,
                    "reason": issue.reason,
                    "detail": issue_text(issue.detail),
                    "source": entry["source"],
                    "source_ref": entry["source_ref"],
                    "created_at": now,
                    "resolved_at": now if issue.field in filled else None,
                }
            )
    if rows:
        session.execute(insert(LEAD_FIELD_ISSUES), rows)


def resolve_issues(session: Session, filled: dict[str, set[int]], now: datetime) -> None:
    """A merge filled these fields on these leads: their open issues are resolved."""
    for name, lead_ids in filled.items():
        session.execute(
            update(LEAD_FIELD_ISSUES)
            .where(LEAD_FIELD_ISSUES.c.field == name)
            .where(LEAD_FIELD_ISSUES.c.lead_id.in_(sorted(lead_ids)))
            .where(LEAD_FIELD_ISSUES.c.resolved_at.is_(None))
            .values(resolved_at=now)
        )
