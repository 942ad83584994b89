"""Reading an Inbound Parse post: the reply address, the new text, automatic replies, the
sender's authentication, raw MIME posts."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import ValidationError

from leadops.models.events import EventType
from leadops.providers.inbound import BadPayload
from leadops.providers.sendgrid.inbound_parse import (
    form_parts,
    html_text,
    inbound_email_event,
    inbound_email_record,
    new_text,
    reply_address,
    sender_authenticated,
    touch_in,
)
from tests.conftest import make_settings
from tests.engagement import INBOUND_DOMAIN, parse_body, parse_fields

KEY = b"inbound-test-key-0123456789"


def test_a_reply_address_names_its_touch_in_any_case_and_only_when_it_verifies() -> None:
    address = reply_address(INBOUND_DOMAIN, 1234, KEY)
    assert len(address.partition("@")[0]) <= 64
    assert touch_in([address.upper()], INBOUND_DOMAIN, KEY) == (1234, "valid")
    tampered = address.replace("reply+1234-", "reply+1235-")
    assert touch_in([tampered], INBOUND_DOMAIN, KEY) == (None, "invalid")
    assert touch_in([tampered, address], INBOUND_DOMAIN, KEY) == (1234, "valid")
    assert touch_in([address], INBOUND_DOMAIN, b"another-key-0123456789") == (None, "invalid")
    assert touch_in([address.replace(INBOUND_DOMAIN, "x.example")], INBOUND_DOMAIN, KEY) == (
        None,
        "absent",
    )
    assert touch_in([address.replace("-", "-0", 1)], INBOUND_DOMAIN, KEY)[0] is None


@pytest.mark.parametrize(
    "text",
    [
        "Sounds good, call me.\n\nOn Tue, 1 Dec 2026 at 10:00, Northwind <a@b.c> wrote:\n> Hi",
        "Sounds good, call me.\n\nOn Tue, 1 Dec 2026 at 10:00 Northwind\n<a@b.c> wrote:\n> Hi",
        "Sounds good, call me.\r\n-- \r\nAda Lovelace\r\nHead of Data",
        "Sounds good, call me.\n\n-----Original Message-----\nFrom: Northwind\nHi",
        "Sounds good, call me.\n\nFrom: Northwind <a@b.c>\nSent: Tuesday\nSubject: guide",
        "> Hi Ada, the guide.\nSounds good, call me.\n\nSent from my iPhone\n> more",
        "Sounds good, call me.\n\nLe mar. 1 déc. 2026, Northwind a écrit :\n> Bonjour",
    ],
)
def test_only_the_new_text_counts(text: str) -> None:
    assert new_text(text) == "Sounds good, call me."


def test_an_html_only_reply_keeps_its_text_without_the_quoted_part() -> None:
    html = (
        "<div>Sounds good,<br>call me.</div><div class='gmail_quote'>"
        "<div>On Tue <b>Northwind</b> wrote:</div><blockquote><p>Hi</p></blockquote></div>"
        "<p>Ada</p>"
    )
    assert new_text(html_text(html)) == "Sounds good,\ncall me.\n\nAda"


@pytest.mark.parametrize(
    ("text", "subject", "event"),
    [
        ("Unsubscribe\n\nthanks", "Re: guide", EventType.OPTED_OUT),
        ("stop.", "Re: guide", EventType.OPTED_OUT),
        ("", "RE: Stop", EventType.OPTED_OUT),
        ("Please don't stop, tell me more", "Re: guide", EventType.REPLIED),
        ("YES", "Re: guide", EventType.REPLIED),  # opt-in words do not apply to email
    ],
)
def test_opt_out_words_on_the_first_line(text: str, subject: str, event: EventType) -> None:
    words = {"STOP", "UNSUBSCRIBE"}
    assert inbound_email_event("reply", {"text": text, "subject": subject}, words) == event
    assert inbound_email_event("auto_reply", {"text": text}, words) == EventType.OTHER


def test_spf_counts_for_the_senders_domain_only_and_dkim_for_its_own() -> None:
    ada = "ada@harbourbank.example"
    assert sender_authenticated(ada, "bounces@harbourbank.example", "pass", "none")
    assert not sender_authenticated(ada, "eve@elsewhere.example", "pass", "none")
    assert sender_authenticated(ada, "", "fail", "{@harbourbank.example : pass}")
    assert not sender_authenticated(ada, "", "none", "{@elsewhere.example : pass}")
    assert not sender_authenticated(ada, "", "none", "{@harbourbank.example : fail}")


def test_fields_decode_in_their_charset_and_a_field_twice_is_refused() -> None:
    fields = parse_fields("x@" + INBOUND_DOMAIN, text="Très bien")
    fields["charsets"] = '{"text": "iso-8859-1", "subject": "no-such-charset"}'
    body, content_type = parse_body(fields)
    body = body.replace("Très".encode(), "Très".encode("latin-1"))
    record = inbound_email_record(body, content_type, domain=INBOUND_DOMAIN, key=KEY)
    assert record.payload["text"] == "Très bien"
    part = b'--xYzZY\r\nContent-Disposition: form-data; name="text"\r\n\r\na\r\n'
    with pytest.raises(BadPayload, match="twice"):
        form_parts(part + part + b"--xYzZY--\r\n", content_type)


def test_a_raw_mime_post_is_read_from_the_whole_message() -> None:
    message = EmailMessage()
    message["From"] = "Ada <ada@harbourbank.example>"
    message["To"] = reply_address(INBOUND_DOMAIN, 7, KEY)
    message["Subject"] = "Re: guide"
    message["Message-ID"] = "<raw-1@harbourbank.example>"
    message["Auto-Submitted"] = "auto-replied"
    message.set_content("Away until Monday.\n\nOn Tue Northwind wrote:\n> hi")
    message.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="a.pdf")
    fields = parse_fields(str(message["To"]))
    for name in ("headers", "text", "html"):
        del fields[name]
    fields["email"] = message.as_string()
    body, content_type = parse_body(fields)
    record = inbound_email_record(body, content_type, domain=INBOUND_DOMAIN, key=KEY)
    assert (record.kind, record.dedupe_key) == ("auto_reply", "sgin:raw-1@harbourbank.example")
    assert record.payload["text"] == "Away until Monday."
    assert record.payload["touch_id"] == 7
    assert [a["filename"] for a in record.payload["attachments"]] == ["a.pdf"]


def test_the_inbound_domain_and_key_are_checked_when_settings_load(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, inbound_email_domain=" Reply.Northwind.Example. ")
    assert settings.inbound_email_domain == "reply.northwind.example"
    with pytest.raises(ValidationError, match="not a domain name"):
        make_settings(tmp_path, inbound_email_domain="reply@northwind.example")
    with pytest.raises(ValidationError, match="public key"):
        make_settings(tmp_path, inbound_email_public_key="not-a-key")
