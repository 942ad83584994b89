"""Twilio message status callbacks and inbound WhatsApp and SMS messages (form fields)
parsed into inbox records, and what each means in our vocabulary (`twilio_status_event`,
`twilio_inbound_event`; the rescore run applies it later).

An inbound message is WhatsApp when its From has the `whatsapp:` prefix, else SMS
(`inbound_channel`). On SMS, Twilio's Advanced Opt-Out keywords always count, whatever
the configured ones: Twilio itself blocks the number after STOP and answers HELP."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from typing import Any

from leadops.models.events import EventType
from leadops.providers.inbound import (
    MAX_ID,
    TWILIO_INBOUND,
    TWILIO_STATUS,
    BadPayload,
    InboxRecord,
)

# Twilio message statuses a status callback may carry.
TWILIO_STATUSES = frozenset(
    {
        "accepted",
        "scheduled",
        "canceled",
        "queued",
        "sending",
        "sent",
        "failed",
        "delivered",
        "undelivered",
        "receiving",
        "received",
        "read",
    }
)
_SID = re.compile(r"[A-Za-z0-9]{2,64}")
_ERROR_CODE = re.compile(r"[0-9]{1,6}")
_PRICE = re.compile(r"-?[0-9]{1,9}(\.[0-9]{1,12})?")
_STATUS_MEANING = {
    "sent": EventType.SENT,
    "delivered": EventType.DELIVERED,
    "read": EventType.READ,
    "failed": EventType.FAILED,
    "undelivered": EventType.FAILED,
}


def twilio_status_event(
    status: str, error_code: int | None, invalid_number_codes: Collection[int]
) -> EventType:
    """What a status callback means; a failure whose ErrorCode is one of
    `invalid_number_codes` (config/scoring.yaml) says the number cannot be reached."""
    meaning = _STATUS_MEANING.get(status.lower(), EventType.OTHER)
    if meaning == EventType.FAILED and error_code in invalid_number_codes:
        return EventType.INVALID_NUMBER
    return meaning


# Twilio Advanced Opt-Out's default SMS keywords (a message that is exactly one of them).
SMS_OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
SMS_OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
SMS_HELP_KEYWORDS = frozenset({"HELP", "INFO"})
# Twilio's error for an SMS to a number that replied STOP ("unsubscribed recipient"), on
# send and in status callbacks.
SMS_UNSUBSCRIBED_CODE = 21610


def inbound_channel(params: Mapping[str, Any]) -> str:
    """The channel an inbound message came by: "whatsapp" (a `whatsapp:` From) or "sms"."""
    return "whatsapp" if str(params.get("From", "")).startswith("whatsapp:") else "sms"


def fold_keyword(text: str) -> str:
    """Upper case, without surrounding spaces or punctuation: how keywords are compared."""
    text = unicodedata.normalize("NFC", text).strip().upper()
    return text.strip(" \t\r\n.!?¡¿,;:\"'")


def inbound_text(params: Mapping[str, Any]) -> str:
    """The text of an inbound message: its body, or the quick-reply button pressed."""
    return str(params.get("Body") or params.get("ButtonPayload") or params.get("ButtonText") or "")


def twilio_inbound_event(
    params: Mapping[str, Any], opt_out: Collection[str], opt_in: Collection[str]
) -> EventType:
    """An inbound message is an opt-out, an opt-in (resubscribed), a help request (SMS) or
    a reply: a text that is exactly one of the keywords (folded with `fold_keyword`) opts
    out or in."""
    folded = fold_keyword(inbound_text(params))
    sms = inbound_channel(params) == "sms"
    if folded in opt_out or (sms and folded in SMS_OPT_OUT_KEYWORDS):
        return EventType.OPTED_OUT
    if folded in opt_in or (sms and folded in SMS_OPT_IN_KEYWORDS):
        return EventType.RESUBSCRIBED
    if sms and folded in SMS_HELP_KEYWORDS:
        return EventType.HELP
    return EventType.REPLIED


def twilio_status_record(params: Mapping[str, str], touch_id: int | None) -> InboxRecord:
    """A Twilio message status callback (form fields), for touch `touch_id` if known."""
    sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
    if not sid or not status:
        raise BadPayload("status callback needs MessageSid and MessageStatus")
    if not _SID.fullmatch(sid):
        raise BadPayload("MessageSid must be 2-64 letters and digits")
    for name in ("MessageStatus", "SmsStatus"):
        value = params.get(name)
        if value is not None and value.lower() not in TWILIO_STATUSES:
            raise BadPayload(f"{name} {value[:40]!r} is not a Twilio message status")
    code = params.get("ErrorCode", "")
    if code and not _ERROR_CODE.fullmatch(code):
        raise BadPayload("ErrorCode must be a Twilio error code (up to 6 digits)")
    price = params.get("Price", "")
    if price and not _PRICE.fullmatch(price):
        raise BadPayload("Price must be a decimal number")
    if touch_id is not None and not 0 <= touch_id <= MAX_ID:
        raise BadPayload(f"touch_id must be a whole number from 0 to {MAX_ID}")
    payload: dict[str, Any] = dict(params)
    payload["touch_id"] = touch_id
    return InboxRecord(TWILIO_STATUS, status.lower(), f"tw:{sid}:{status.lower()}"[:200], payload)


def twilio_inbound_record(params: Mapping[str, str]) -> InboxRecord:
    """An inbound WhatsApp message or SMS (form fields)."""
    sid, sender = params.get("MessageSid", ""), params.get("From", "")
    if not sid or not sender:
        raise BadPayload("inbound message needs MessageSid and From")
    if not _SID.fullmatch(sid):
        raise BadPayload("MessageSid must be 2-64 letters and digits")
    if len(sender) > 64:
        raise BadPayload("From must be a WhatsApp address or a number (at most 64 characters)")
    return InboxRecord(TWILIO_INBOUND, "inbound", f"tw-in:{sid}"[:200], dict(params))
