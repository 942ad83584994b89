"""The per-run table and the transient-error rule for task retries."""

from __future__ import annotations

import sqlite3
from collections import Counter

import sqlalchemy as sa

from leadops.core.db import is_transient
from leadops.delivery.outcomes import DispatchReport
from leadops.reporting.run_table import run_rows


def test_run_rows_per_campaign_step_and_channel() -> None:
    dispatch = DispatchReport()
    dispatch.outcomes.update(
        {
            ("educate", "day-1", "email", "sent"): 3,
            ("educate", "day-1", "email", "held:outside_send_window"): 2,
            ("educate", "day-1", "email", "held:frequency_cap"): 1,
            ("educate", "day-1", "whatsapp", "skipped:no_consent"): 4,
            ("offer", "day-10", "email", "failed"): 1,
            ("offer", "day-10", "email", "ambiguous"): 2,
        }
    )
    planned = Counter({("educate", "day-1", "email"): 6, ("connect", "day-1", "email"): 1})
    rows = {(r["campaign"], r["step"], r["channel"]): r for r in run_rows(planned, dispatch)}
    assert list(rows) == sorted(rows)
    email = rows[("educate", "day-1", "email")]
    assert (email["planned"], email["sent"]) == (6, 3)
    assert email["held"] == "frequency_cap 1, outside_send_window 2"
    assert rows[("educate", "day-1", "whatsapp")]["skipped"] == "no_consent 4"
    offer = rows[("offer", "day-10", "email")]
    assert (offer["failed"], offer["ambiguous"], offer["planned"]) == (1, 2, 0)
    assert rows[("connect", "day-1", "email")]["sent"] == 0


def test_only_transient_errors_are_retried() -> None:
    locked = sa.exc.OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
    assert is_transient(locked)
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    assert not is_transient(ValueError("bad config"))
    assert not is_transient(KeyError("bug"))
    assert not is_transient(None)
