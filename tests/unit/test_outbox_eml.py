"""The file outbox writes plain .eml headers: List-Unsubscribe is read back as <https://...>."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

from leadops.providers.base import OutgoingMessage
from leadops.providers.outbox import OutboxChannel

URL = (
    "https://hooks.northwind.example/unsubscribe/42?token="
    "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MA.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
)


def _written(tmp_path: Path, **fields: str) -> bytes:
    channel = OutboxChannel(
        tmp_path, "email", sender_name="Northwind Marketing", sender_email="hello@northwind.example"
    )
    message = OutgoingMessage(
        touch_id=7,
        lead_id=42,
        channel="email",
        to="ada@example.com",
        campaign="educate",
        step="day-1",
        created_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        subject=fields.get("subject", "Metrics that matter"),
        html="<p>Hello</p>",
        text="Hello",
        unsubscribe_url=URL,
        to_name=fields.get("to_name", "Ada Lovelace"),
    )
    result = channel.send(message)
    return (tmp_path / result.provider_id).read_bytes()


def _header_lines(raw: bytes, name: str) -> str:
    """The header as written, continuation lines included."""
    head = raw.split(b"\n\n", 1)[0].decode("ascii")
    found = re.search(rf"^{name}:.*(?:\n[ \t].*)*", head, re.MULTILINE | re.IGNORECASE)
    assert found is not None, f"no {name} header in {head}"
    return found.group(0)


def test_list_unsubscribe_is_written_plain_and_parses_back(tmp_path: Path) -> None:
    raw = _written(tmp_path)
    line = _header_lines(raw, "List-Unsubscribe")
    assert "=?" not in line  # no RFC 2047 encoded words
    assert line == f"List-Unsubscribe: <{URL}>"
    # what an unsubscribe parser does: the <...> items of the unfolded header
    parsed = message_from_bytes(raw, policy=policy.default)
    assert re.findall(r"<([^>]+)>", str(parsed["List-Unsubscribe"])) == [URL]
    assert _header_lines(raw, "List-Unsubscribe-Post") == (
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    )
    for name in ("From", "To", "Subject", "X-Leadops-Campaign"):
        assert "=?" not in _header_lines(raw, name), name
    assert parsed["Subject"] == "Metrics that matter"


def test_non_ascii_subjects_and_names_are_still_encoded_and_read_back(tmp_path: Path) -> None:
    raw = _written(tmp_path, subject="Café metrics — a long subject " * 3, to_name="Zoë Ölsen")
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "Café metrics — a long subject " * 3
    assert parsed["To"].addresses[0].display_name == "Zoë Ölsen"
    assert "=?" not in _header_lines(raw, "List-Unsubscribe")
