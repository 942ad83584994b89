"""Site and product events: the X-Leadops-Signature HMAC-SHA256 of the raw body, and the
body parsed into inbox records (a JSON object or array of events)."""

from __future__ import annotations

import hashlib
import hmac

from leadops.core.clock import parse_instant
from leadops.providers.inbound import SITE, BadPayload, InboxRecord, digest, parse_json


def site_signature(secret: str, body: bytes) -> str:
    """The X-Leadops-Signature header value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_site(secret: str, body: bytes, header: str) -> bool:
    """True when the X-Leadops-Signature header signs `body` (any header text is safe)."""
    given = header.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(site_signature(secret, body).encode(), given)


def site_records(body: bytes) -> list[InboxRecord]:
    """Parse site events: a JSON object or array of
    {"id", "type", "email", "occurred_at", "properties"} objects."""
    data = parse_json(body)
    events = data if isinstance(data, list) else [data]
    records = []
    for index, event in enumerate(events):
        where = f"event {index}"
        if not isinstance(event, dict):
            raise BadPayload(f"{where} is not a JSON object")
        kind = event.get("type")
        if not isinstance(kind, str) or not kind or len(kind) > 64:
            raise BadPayload(f"{where}: 'type' must be a non-empty string (at most 64 chars)")
        email = event.get("email")
        if not isinstance(email, str) or "@" not in email or len(email) > 320:
            raise BadPayload(f"{where} ({kind}): 'email' must be an email address")
        occurred = event.get("occurred_at")
        if not isinstance(occurred, str):
            raise BadPayload(f"{where} ({kind}): 'occurred_at' must be an ISO 8601 time")
        try:
            parse_instant(occurred)
        except (ValueError, OverflowError) as exc:
            raise BadPayload(f"{where} ({kind}): occurred_at: {exc}") from exc
        properties = event.get("properties", {})
        if not isinstance(properties, dict):
            raise BadPayload(f"{where} ({kind}): 'properties' must be an object")
        if kind == "page_view" and not isinstance(properties.get("url"), str):
            raise BadPayload(f"{where} (page_view): properties.url must be a string")
        event_id = event.get("id")
        if isinstance(event_id, str) and 0 < len(event_id) <= 180:
            key = f"site:{event_id}"
        else:
            key = "site:h:" + digest(event)
        records.append(InboxRecord(SITE, kind, key, event))
    return records
