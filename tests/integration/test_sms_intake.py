"""SMS consent at import: a column of its own, mapped like any value, needing a number,
merged once given (web forms never set it: tests/web/test_form_trust.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import session_scope
from leadops.intake.config import ValueMapping
from leadops.intake.csv_source import read_csv
from leadops.intake.importer import import_records
from leadops.intake.mapping import SourceRules
from leadops.models import LEADS

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
RULES = SourceRules(ValueMapping(values={"sms_consent": {"ja": "true", "nein": "false"}}))


def _import(engine: Engine, path: Path, now: datetime) -> None:
    with session_scope(engine) as session:
        import_records(
            session,
            read_csv(path, mapping={"SMS Opt-In": "sms_consent"}),
            source="csv:test",
            now=now,
            default_region="US",
            default_timezone="UTC",
            rules=RULES,
        )


def _consent(engine: Engine) -> dict[str, tuple[bool, datetime | None, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                LEADS.c.email, LEADS.c.sms_consent, LEADS.c.sms_consent_at, LEADS.c.email_consent
            )
        ).all()
    return {email: (sms, at, mail) for email, sms, at, mail in rows}


def test_sms_consent_is_read_mapped_and_needs_a_number(tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(
        "email,phone,SMS Opt-In,email_consent\n"
        "ann@example.com,+14155550101,JA,true\n"
        "bo@example.com,+14155550102,nein,true\n"
        "cy@example.com,,true,true\n"  # consent without a number to text: none
        "di@example.com,+14155550104,,false\n",
        encoding="utf-8",
    )
    _import(engine, path, NOW)
    assert _consent(engine) == {
        "ann@example.com": (True, NOW, True),
        "bo@example.com": (False, None, True),
        "cy@example.com": (False, None, True),
        "di@example.com": (False, None, False),
    }
    # A later file giving consent adds it; one leaving it out never takes it away.
    later = NOW + timedelta(days=1)
    path.write_text(
        "email,phone,sms_consent\nbo@example.com,+14155550102,yes\nann@example.com,+14155550101,\n",
        encoding="utf-8",
    )
    _import(engine, path, later)
    found = _consent(engine)
    assert found["bo@example.com"][:2] == (True, later)
    assert found["ann@example.com"][:2] == (True, NOW)
