"""A bad field never costs a reachable lead: CSV, HubSpot and form records with a usable
channel are imported without the bad value, which is kept and flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from leadops.core.db import session_scope
from leadops.intake.config import HubSpotSource
from leadops.intake.csv_source import import_csv_file
from leadops.intake.hubspot import contact_record
from leadops.intake.importer import ImportReport, import_records
from leadops.intake.mapping import SourceRules
from leadops.intake.records import RawRecord
from leadops.models import Lead, LeadFieldIssue, LeadSourceRecord, QuarantinedRecord
from leadops.reporting import kpis
from tests.conftest import ROOT

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HEADER = "email,phone,country,timezone,whatsapp_consent,company_size\n"


def _csv(engine: Engine, path: Path, text: str) -> ImportReport:
    path.write_text(HEADER + text)
    with session_scope(engine) as session:
        report, _ = import_csv_file(
            session,
            path,
            source=f"csv:{path.name}",
            now=NOW,
            default_region="US",
            default_timezone="UTC",
            force=True,
        )
    assert report is not None
    assert report.read == report.created + report.merged + report.quarantined_total
    return report


def _issues(engine: Engine) -> list[LeadFieldIssue]:
    with Session(engine) as session:
        return list(session.exec(select(LeadFieldIssue).order_by(col(LeadFieldIssue.id))))


def _lead(engine: Engine, email: str) -> Lead:
    with Session(engine) as session:
        return session.exec(select(Lead).where(Lead.email == email)).one()


def test_csv_record_with_a_bad_phone_is_imported_for_email(engine: Engine, tmp_path: Path) -> None:
    report = _csv(
        engine,
        tmp_path / "a.csv",
        "ann@x.io,12,DE,Mars/Base,true,lots\n"  # bad phone, zone, size: email works
        "not-an-email,+49 151 12345678,,,true,\n"  # bad email: WhatsApp works
        ",call me,,,,\n"  # nothing usable: quarantined whole
        "cy@x.io,,Atlantis,,,\n",  # bad country
    )
    assert (report.created, report.quarantined_total, report.flagged_records) == (3, 1, 3)
    assert report.flagged == {
        "invalid_phone": 1,
        "unknown_timezone": 1,
        "invalid_company_size": 1,
        "invalid_email": 1,
        "invalid_country": 1,
    }
    ann = _lead(engine, "ann@x.io")
    assert (ann.phone, ann.timezone, ann.company_size) == (None, "Europe/Berlin", None)
    assert ann.whatsapp_consent is False  # no number to message
    with Session(engine) as session:
        whatsapp = session.exec(select(Lead).where(Lead.phone == "+4915112345678")).one()
        [quarantined] = session.exec(select(QuarantinedRecord)).all()
        history = session.exec(
            select(LeadSourceRecord).where(LeadSourceRecord.lead_id == ann.id)
        ).one()
    assert whatsapp.email is None and whatsapp.whatsapp_consent is True
    assert quarantined.reasons == ["invalid_phone"] and quarantined.raw["phone"] == "call me"
    assert history.data["_flagged"] == {
        "phone": "12",
        "timezone": "Mars/Base",
        "company_size": "lots",
    }
    kept = {(i.lead_id, i.field): (i.value, i.reason, i.resolved_at) for i in _issues(engine)}
    assert kept[(ann.id, "phone")] == ("12", "invalid_phone", None)
    assert kept[(whatsapp.id, "email")] == ("not-an-email", "invalid_email", None)
    assert kept[(_lead(engine, "cy@x.io").id, "country")] == ("Atlantis", "invalid_country", None)

    # The same file again flags nothing twice; a record with the right phone resolves it.
    _csv(engine, tmp_path / "a.csv", "ann@x.io,12,DE,Mars/Base,true,lots\n")
    assert len(_issues(engine)) == 5
    later = NOW + timedelta(days=1)
    with session_scope(engine) as session:
        import_records(
            session,
            [RawRecord({"email": "ann@x.io", "phone": "+49 151 22222222"}, "fix:1")],
            source="fix",
            now=later,
            default_region="US",
            default_timezone="UTC",
        )
    phone = [i for i in _issues(engine) if i.lead_id == ann.id and i.field == "phone"]
    assert [i.resolved_at for i in phone] == [later]
    assert _lead(engine, "ann@x.io").phone == "+4915122222222"

    report_now = kpis.compute(engine, later, config_dir=ROOT / "config")
    assert report_now.flagged_leads == 3
    assert report_now.flagged_by_reason == {
        "unknown_timezone": 1,
        "invalid_company_size": 1,
        "invalid_email": 1,
        "invalid_country": 1,
    }
    assert report_now.quarantined_open == 1
    row = next(r for r in kpis.headline_rows(report_now) if r["kpi"].startswith("data quality"))
    assert row["value"] == "3" and "invalid_email 1" in row["note"]


def test_a_bad_value_merged_into_a_lead_that_has_the_field_is_resolved_at_once(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        for data in (
            {"email": "b@x.io", "phone": "+1 212 555 0134"},
            {"email": "b@x.io", "phone": "x"},
        ):
            import_records(
                session,
                [RawRecord(data, "m")],
                source="m",
                now=NOW,
                default_region="US",
                default_timezone="UTC",
            )
    [issue] = _issues(engine)
    assert (issue.field, issue.resolved_at) == ("phone", NOW)
    assert _lead(engine, "b@x.io").phone == "+12125550134"


def test_hubspot_contact_with_a_bad_phone_is_imported_and_flagged(engine: Engine) -> None:
    config = HubSpotSource()
    contact = {
        "id": "901",
        "properties": {
            "email": "hub@x.io",
            "phone": "not a number",
            "country": "Narnia",
            "lifecyclestage": "marketingqualifiedlead",
        },
    }
    with session_scope(engine) as session:
        report = import_records(
            session,
            [contact_record(contact, config)],
            source="hubspot",
            now=NOW,
            default_region="US",
            default_timezone="UTC",
            rules=SourceRules(config.value_mapping()),
        )
    assert (report.created, report.flagged_records) == (1, 1)
    lead = _lead(engine, "hub@x.io")
    assert (lead.crm_id, lead.lifecycle_stage, lead.phone, lead.country) == (
        "901",
        "mql",
        None,
        None,
    )
    assert {(i.field, i.source, i.source_ref) for i in _issues(engine)} == {
        ("phone", "hubspot", "hubspot:contact/901"),
        ("country", "hubspot", "hubspot:contact/901"),
    }


def test_form_record_through_the_importer_keeps_its_consent_override(engine: Engine) -> None:
    with session_scope(engine) as session:
        report = import_records(
            session,
            [RawRecord({"email": "f@x.io", "phone": "123", "email_consent": "true"}, "form:1")],
            source="form:contact-us",
            now=NOW,
            default_region="US",
            default_timezone="UTC",
            consent_override={"email_consent": False},
        )
    assert (report.created, report.flagged_records) == (1, 1)
    assert _lead(engine, "f@x.io").email_consent is False
    [issue] = _issues(engine)
    assert (issue.field, issue.value) == ("phone", "123")
