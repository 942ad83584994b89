"""Dedupe and merge: email, then phone, then CRM id; oldest id kept, nothing downgraded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from leadops.core.db import session_scope
from leadops.intake.importer import ImportReport, import_records
from leadops.intake.records import RawRecord
from leadops.models import Lead, LeadSourceRecord, QuarantinedRecord

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _import(
    engine: Engine, source: str, *rows: dict[str, object], now: datetime = NOW
) -> ImportReport:
    with session_scope(engine) as session:
        return import_records(
            session,
            [RawRecord(data=row, source_ref=f"{source}:{i}") for i, row in enumerate(rows, 1)],
            source=source,
            now=now,
            default_region="GB",
            default_timezone="UTC",
        )


def _leads(engine: Engine) -> list[Lead]:
    with Session(engine) as session:
        return list(session.exec(select(Lead).order_by(col(Lead.id))).all())


def test_newer_record_fills_empty_fields_and_never_downgrades(engine: Engine) -> None:
    _import(
        engine,
        "csv:a.csv",
        {"email": "Ann@Example.com", "lifecycle_stage": "sql", "email_consent": "true"},
    )
    later = NOW + timedelta(days=1)
    report = _import(
        engine,
        "hubspot",
        {
            "email": "ann@example.com",
            "first_name": "ann",
            "phone": "07400 123456",
            "company": "Acme",
            "lifecycle_stage": "lead",
            "email_consent": "false",
            "crm_id": "501",
        },
        now=later,
    )
    assert report.merged == 1 and report.created == 0
    [lead] = _leads(engine)
    assert lead.id == 1 and lead.first_name == "Ann" and lead.phone == "+447400123456"
    assert lead.company == "Acme" and lead.crm_id == "501"
    assert lead.lifecycle_stage == "sql" and lead.email_consent is True
    assert lead.email_consent_at == NOW and lead.updated_at == later
    with Session(engine) as session:
        history = session.exec(select(LeadSourceRecord).order_by(col(LeadSourceRecord.id))).all()
    assert [(h.source, h.action, h.matched_on) for h in history] == [
        ("csv:a.csv", "created", None),
        ("hubspot", "merged", "email"),
    ]
    assert history[1].changes is not None
    assert history[1].changes["company"] == [None, "Acme"]
    assert "lifecycle_stage" not in history[1].changes


def test_phone_then_crm_id_match_only_when_emails_do_not_contradict(engine: Engine) -> None:
    _import(
        engine,
        "csv",
        {"phone": "+447400123456", "first_name": "Bo"},
        {"crm_id": "9", "email": "c@x.io"},
    )
    report = _import(
        engine,
        "csv",
        {"phone": "07400 123456", "email": "bo@x.io", "lifecycle_stage": "mql"},  # fills email
        {"phone": "+447400123456", "email": "other@x.io"},  # contradicts: a new lead
        {"crm_id": "9", "first_name": "Cy", "email": "c@x.io"},  # email match
        {"crm_id": "9", "phone": "+447400123457"},  # crm id match (no email given)
    )
    assert (report.created, report.merged) == (1, 3)
    bo, cy, other = _leads(engine)
    assert bo.email == "bo@x.io" and bo.lifecycle_stage == "mql"
    assert cy.first_name == "Cy" and cy.phone == "+447400123457"
    assert other.email == "other@x.io" and other.phone == "+447400123456"


def test_duplicates_inside_one_batch_merge_into_the_first(engine: Engine) -> None:
    report = _import(
        engine,
        "csv",
        {"email": "d@x.io", "lifecycle_stage": "subscriber"},
        {"email": "D@X.IO", "company": "Dee Ltd", "lifecycle_stage": "customer"},
        {"email": "d@x.io", "whatsapp_consent": "yes", "phone": "+447400123456"},
    )
    assert (report.created, report.merged, report.read) == (1, 2, 3)
    [lead] = _leads(engine)
    assert lead.company == "Dee Ltd" and lead.lifecycle_stage == "customer"
    assert lead.whatsapp_consent is True and lead.phone == "+447400123456"
    with Session(engine) as session:
        history = session.exec(select(LeadSourceRecord)).all()
    assert {h.lead_id for h in history} == {lead.id} and len(history) == 3


def test_unsubscribed_always_wins_and_bad_records_are_quarantined(engine: Engine) -> None:
    _import(engine, "csv", {"email": "e@x.io", "lifecycle_stage": "mql"})
    report = _import(
        engine,
        "csv",
        {"email": "e@x.io", "lifecycle_stage": "unsubscribed"},
        {"email": "not an email", "first_name": "=cmd|' /C calc'!A0"},
    )
    assert report.merged == 1 and report.quarantined_total == 1
    [lead] = _leads(engine)
    assert lead.lifecycle_stage == "unsubscribed" and lead.unsubscribed_at == NOW
    _import(engine, "csv", {"email": "e@x.io", "lifecycle_stage": "customer"})
    assert _leads(engine)[0].lifecycle_stage == "unsubscribed"
    with Session(engine) as session:
        [bad] = session.exec(select(QuarantinedRecord)).all()
    assert bad.raw["first_name"] == "=cmd|' /C calc'!A0" and bad.reasons == ["invalid_email"]
