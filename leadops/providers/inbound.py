"""What an incoming webhook event becomes before the inbox stores it.

`InboxRecord` is the one shape every parser returns (SendGrid and Twilio here in
providers, site events, unsubscribe links and hand-raise forms in engagement), `source`
one of the names below (the inbox's `source` column). `BadPayload` and the bounded field
checks are what every parser refuses a body with.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

SENDGRID = "sendgrid"
TWILIO_STATUS = "twilio_status"
TWILIO_INBOUND = "twilio_inbound"
UNSUBSCRIBE = "unsubscribe"
SITE = "site"
FORM = "form"  # a hand-raise web form (a demo or contact request)
SENDGRID_INBOUND = "sendgrid_inbound"  # an email to the inbound domain (Inbound Parse)

MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds (PostgreSQL)
_DIGITS = re.compile(r"[0-9]{1,19}")


class BadPayload(ValueError):
    """A request body that is not what the endpoint accepts; the message says where."""


@dataclass(frozen=True)
class InboxRecord:
    source: str
    kind: str
    dedupe_key: str
    payload: dict[str, Any]


def parse_json(body: bytes) -> Any:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(body, parse_constant=no_constants)
    except RecursionError as exc:
        raise BadPayload("body is nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPayload(f"body is not JSON: {exc}") from exc


def id_field(value: object, where: str) -> None:
    """An id carried in a payload: absent, or a whole number a database column holds."""
    if value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
        return
    if isinstance(value, str) and _DIGITS.fullmatch(value) and int(value) <= MAX_ID:
        return
    raise BadPayload(f"{where} must be a whole number from 0 to {MAX_ID}")


def text_field(value: object, where: str, limit: int = 2000) -> None:
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise BadPayload(f"{where} must be text of at most {limit} characters")


def digest(*parts: object) -> str:
    """A content hash, the dedupe key of an event that carries no id of its own."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
