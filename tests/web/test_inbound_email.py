"""Email replies through SendGrid Inbound Parse: signed multipart posts as SendGrid sends
them, matched to the touch they answer, applied like WhatsApp replies."""

from __future__ import annotations

import email
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.models import ENROLLMENTS, ESCALATIONS, INBOX, TOUCHES, TouchStatus
from leadops.runtime import load_escalation_runtime
from leadops.sales.handoff import apply_inbox_and_escalate
from leadops.views.webhooks import rejection_counts
from tests.engagement import (
    INBOUND_DOMAIN,
    Harness,
    engagement_settings,
    new_signing_key,
    parse_body,
    parse_fields,
    post_inbound_email,
)

PARSE_KEY = new_signing_key()  # the Parse security policy's key pair (not the Event Webhook's)
QUOTED = (
    "\n\nAda\n\nOn Tue, 1 Dec 2026 at 10:00, Northwind Analytics <hello@northwind.example>\n"
    "wrote:\n> Hi Ada, here is the metrics guide.\n> Unsubscribe: https://x.example/u/t\n"
)


def _harness(tmp_path: Path, engine: Engine, **overrides: object) -> Harness:
    settings = engagement_settings(
        tmp_path,
        new_signing_key(),
        inbound_email_domain=INBOUND_DOMAIN,
        inbound_email_public_key=PARSE_KEY.public_b64,
        **overrides,
    )
    return Harness(settings, engine, new_signing_key())


@pytest.fixture
def h(tmp_path: Path, engine: Engine) -> Harness:
    return _harness(tmp_path, engine)


@pytest.fixture
def lite(tmp_path: Path, sqlite_engine: Engine) -> Harness:
    return _harness(tmp_path, sqlite_engine, inbound_email_max_bytes=2_000_000)


def _post(h: Harness, fields: dict[str, str], **options: Any) -> Any:
    body, content_type = parse_body(fields, options.pop("files", ()))
    stamp = options.pop("timestamp", str(int(h.clock.now().timestamp())))
    return post_inbound_email(h.client, options.pop("key", PARSE_KEY), body, content_type, stamp)


def _reply_address(h: Harness, touch_id: int) -> str:
    """The Reply-To the lead's email carried, read from the outbox's .eml."""
    (eml,) = (h.settings.resolved_outbox_dir / "email").rglob(f"t{touch_id:08d}.eml")
    return parseaddr(email.message_from_bytes(eml.read_bytes())["Reply-To"])[1]


def _inbox(h: Harness) -> list[dict[str, Any]]:
    with h.engine.connect() as connection:
        rows = connection.execute(sa.select(INBOX).order_by(INBOX.c.id)).all()
    return [row._asdict() for row in rows]


def _rejections(h: Harness) -> dict[tuple[str, str], int]:
    return {(r["source"], r["reason"]): r["count"] for r in rejection_counts(h.engine)}


def _queue_touch(h: Harness, lead_id: int) -> int:
    """A later step of the lead's sequence, queued (pending)."""
    t = TOUCHES.c
    with h.engine.begin() as connection:
        row = dict(
            connection.execute(sa.select(TOUCHES).where(t.lead_id == lead_id).limit(1))
            .mappings()
            .one()
        )
        row.pop("id")
        row.update(step="day-10", status=TouchStatus.PENDING, sent_at=None, provider_id=None)
        return int(connection.execute(sa.insert(TOUCHES).values(row).returning(t.id)).scalar_one())


def test_an_email_reply_stops_the_sequence_counts_as_a_reply_and_reaches_a_rep(
    h: Harness,
) -> None:
    lead_id = h.add_lead(
        "ada@harbourbank.example", seniority="director", company_size=300, country="GB"
    )
    h.tick()  # the day-1 email goes out with its own reply address
    touch = h.touch(lead_id, "email")
    address = _reply_address(h, touch["id"])
    assert address.startswith(f"reply+{touch['id']}-") and address.endswith("@" + INBOUND_DOMAIN)
    queued = _queue_touch(h, lead_id)
    h.clock.advance(timedelta(hours=3))

    fields = parse_fields(address.upper(), text="Yes, let's talk on Thursday." + QUOTED)
    fields["attachments"] = "1"
    deck = [("attachment1", "deck.pdf", "application/pdf", b"%PDF-1.7\n\x89\xff\xfe\x00")]
    answer = _post(h, fields, files=deck)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 1, "stored": 1, "kind": "reply"}
    assert _post(h, fields, files=deck).json()["stored"] == 0  # SendGrid posted it twice

    escalation = load_escalation_runtime(h.settings, engine=h.engine)
    handed = apply_inbox_and_escalate(h.runtime, escalation, h.clock.now())
    assert (handed.events, handed.escalated) == (1, 1)

    (row,) = _inbox(h)
    assert (row["source"], row["status"], row["event"]) == (
        "sendgrid_inbound",
        "processed",
        "replied",
    )
    assert (row["lead_id"], row["touch_id"]) == (lead_id, touch["id"])
    assert row["payload"]["text"] == "Yes, let's talk on Thursday.\n\nAda"  # quoted part cut
    assert row["payload"]["attachments"] == [
        {"part": "attachment1", "filename": "deck.pdf", "type": "application/pdf", "bytes": 13}
    ]
    assert ("reply", 15) in h.ledger(lead_id)
    with h.engine.connect() as connection:
        skipped = connection.execute(
            sa.select(TOUCHES.c.status, TOUCHES.c.hold_reason).where(TOUCHES.c.id == queued)
        ).one()
        ended = connection.execute(
            sa.select(ENROLLMENTS.c.status, ENROLLMENTS.c.end_reason).where(
                ENROLLMENTS.c.lead_id == lead_id
            )
        ).one()
        trigger = connection.execute(sa.select(ESCALATIONS.c.trigger)).scalar_one()
    assert tuple(skipped) == ("skipped", "replied")
    assert tuple(ended) == ("exited", "replied")
    assert trigger == "reply_intent"
    lead = h.lead(lead_id)
    assert lead["last_engaged_at"] == h.clock.now()
    assert lead["last_inbound_at"] is None  # WhatsApp's 24-hour window stays closed
    assert lead["email_suppressed_at"] is None


def test_forged_stale_unsigned_oversized_and_malformed_posts_are_refused_and_counted(
    lite: Harness,
) -> None:
    h = lite
    fields = parse_fields(f"reply@{INBOUND_DOMAIN}")
    body, content_type = parse_body(fields)
    stamp = str(int(h.clock.now().timestamp()))
    path = "/webhooks/sendgrid/inbound"
    unsigned = h.client.post(path, content=body, headers={"Content-Type": content_type})
    assert unsigned.status_code == 401
    forged = h.client.post(
        path,
        content=body.replace(b"let's talk", b"stop it"),
        headers={
            "Content-Type": content_type,
            "X-Twilio-Email-Event-Webhook-Signature": PARSE_KEY.sign(stamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        },
    )
    assert forged.status_code == 403
    assert post_inbound_email(h.client, h.key, body, content_type, stamp).status_code == 403
    old = str(int((h.clock.now() - timedelta(hours=1)).timestamp()))
    assert _post(h, fields, timestamp=old).status_code == 403

    # Emails may be larger than other requests (LEADOPS_INBOUND_EMAIL_MAX_BYTES), up to it.
    photo = [("attachment1", "photo.jpg", "image/jpeg", b"\xff" * 1_200_000)]
    big = _post(h, parse_fields(f"reply@{INBOUND_DOMAIN}", message_id="<big@x>"), files=photo)
    assert big.status_code == 200
    huge = [("attachment1", "video.mp4", "video/mp4", b"\x00" * 2_100_000)]
    assert _post(h, fields, files=huge).status_code == 413
    assert h.sendgrid([{"big": "x" * 1_200_000}]).status_code == 413  # other routes: 1 MB

    truncated = body[: body.rindex(b"--xYzZY--")]
    for content, kind in (
        (truncated, content_type),
        (b'{"text": "hi"}', "application/json"),
        (body.replace(b'"to": ["', b'"to": [['), content_type),
    ):
        refused = post_inbound_email(h.client, PARSE_KEY, content, kind, stamp)
        assert refused.status_code == 400, (kind, refused.text)
    assert _rejections(h) == {
        ("sendgrid_inbound", "unsigned"): 1,
        ("sendgrid_inbound", "bad_signature"): 2,
        ("sendgrid_inbound", "stale"): 1,
        ("sendgrid_inbound", "too_large"): 1,
        ("sendgrid_inbound", "malformed"): 3,
        ("sendgrid", "too_large"): 1,
    }
    assert len(_inbox(h)) == 1


def test_the_endpoint_answers_503_until_its_public_key_is_set(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    h = Harness(engagement_settings(tmp_path, new_signing_key()), sqlite_engine, PARSE_KEY)
    answer = _post(h, parse_fields(f"reply@{INBOUND_DOMAIN}"))
    assert answer.status_code == 503
    assert "LEADOPS_INBOUND_EMAIL_PUBLIC_KEY" in answer.json()["error"]


AUTOMATIC = [  # sender, subject, headers, kind
    (
        "Ada <ada@harbourbank.example>",
        "Re: guide",
        "Auto-Submitted: auto-replied\r\n",
        "auto_reply",
    ),
    ("Ada <ada@harbourbank.example>", "Out of Office: Re: guide", "", "auto_reply"),
    ("Ada <ada@harbourbank.example>", "Re: guide", "Precedence: bulk\r\n", "auto_reply"),
    ("Mail Delivery <MAILER-DAEMON@harbourbank.example>", "Undeliverable", "", "bounce"),
]


def test_automatic_replies_and_bounces_are_stored_and_counted_never_replies(
    lite: Harness,
) -> None:
    h = lite
    lead_id = h.add_lead("ada@harbourbank.example")
    h.tick()
    address = _reply_address(h, h.touch(lead_id, "email")["id"])
    for n, (sender, subject, headers, kind) in enumerate(AUTOMATIC):
        fields = parse_fields(
            address,
            sender,
            "Away until Monday.",
            subject=subject,
            headers=headers,
            message_id=f"<auto-{n}@x>",
        )
        assert _post(h, fields).json() == {"received": 1, "stored": 1, "kind": kind}
    report = h.rescore()
    assert report.events == {"sendgrid_inbound/auto_reply": 3, "sendgrid_inbound/bounce": 1}
    assert report.sequences_stopped == {} and report.sales_ready == []
    rows = _inbox(h)
    assert {(row["status"], row["event"], row["lead_id"]) for row in rows} == {
        ("processed", "other", lead_id)
    }
    assert all("not a reply" in row["result"] for row in rows)
    assert not [rule for rule, _ in h.ledger(lead_id) if rule == "reply"]


def test_an_unsubscribe_reply_suppresses_email_but_not_from_another_sender(lite: Harness) -> None:
    h = lite
    ada = h.add_lead("ada@harbourbank.example", "+447700900123")
    bob = h.add_lead("bob@harbourbank.example")
    h.tick()
    to_ada = _reply_address(h, h.touch(ada, "email")["id"])
    to_bob = _reply_address(h, h.touch(bob, "email")["id"])
    _post(h, parse_fields(to_ada, text="Unsubscribe" + QUOTED, message_id="<a@x>"))
    colleague = "Carol <carol@harbourbank.example>"
    _post(h, parse_fields(to_bob, colleague, "STOP", message_id="<b@x>"))
    report = h.rescore()

    lead = h.lead(ada)
    assert lead["email_suppressed_at"] is not None
    assert lead["email_suppression_reason"] == "email_opt_out"
    assert lead["whatsapp_suppressed_at"] is None  # email_opt_out: email (config/scoring.yaml)
    assert ("unsubscribe", -25) in h.ledger(ada)
    assert report.sequences_stopped == {"email_opt_out": 1, "replied": 1}

    assert h.lead(bob)["email_suppressed_at"] is None  # Carol cannot unsubscribe Bob
    by_lead = {row["lead_id"]: row for row in _inbox(h)}
    assert by_lead[bob]["event"] == "replied"
    assert "carol@harbourbank.example" in by_lead[bob]["result"]
    assert [r.lead_id for r in report.sales_ready] == [bob]


def test_without_a_valid_reply_address_only_a_vouched_for_sender_matches(lite: Harness) -> None:
    h = lite
    lead_id = h.add_lead("ada@harbourbank.example")
    h.tick()
    touch_id = h.touch(lead_id, "email")["id"]
    forged = _reply_address(h, touch_id).replace(f"reply+{touch_id}-", f"reply+{touch_id + 1}-")
    plain = f"hello@{INBOUND_DOMAIN}"
    _post(h, parse_fields(plain, message_id="<1@x>"))  # SPF passes for harbourbank.example
    _post(h, parse_fields(forged, message_id="<2@x>", spf="softfail"))  # a spoofed sender
    _post(h, parse_fields(plain, "Eve <eve@elsewhere.example>", message_id="<3@x>"))
    h.rescore()

    first, spoofed, stranger = _inbox(h)
    assert (first["status"], first["lead_id"], first["touch_id"]) == (
        "processed",
        lead_id,
        touch_id,
    )
    assert (spoofed["status"], spoofed["lead_id"]) == ("ignored", None)
    assert spoofed["result"] == (
        "no matching lead: its reply address does not verify, "
        "and the sender is not vouched for by SPF or DKIM"
    )
    assert (stranger["status"], stranger["lead_id"]) == ("ignored", None)
    assert "no lead's" in stranger["result"]
