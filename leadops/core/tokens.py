"""Signed, optionally expiring tokens for links (unsubscribe, confirmation, acknowledge), and
short ones for email addresses (`short_sign`: the Reply-To of nurture emails).

A token is `base64url(json payload).base64url(HMAC-SHA256)`, unpadded; the payload names
its purpose so a token made for one kind of link is refused by another. Only that one
spelling is accepted: padding, other base64 alphabets, stray characters or a different
encoding of the same bits are refused, so each signature has exactly one token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime
from typing import Any


class InvalidToken(ValueError):
    """The token is malformed, forged, for another purpose, or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_CANONICAL = re.compile(r"[A-Za-z0-9_-]+")


def _unb64(text: str) -> bytes:
    """Decode unpadded base64url, refusing any spelling `_b64` would not produce."""
    if not _CANONICAL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not canonical base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def sign(
    purpose: str, data: dict[str, Any], key: bytes, *, expires_at: datetime | None = None
) -> str:
    payload: dict[str, Any] = {"p": purpose, "d": data}
    if expires_at is not None:
        payload["x"] = int(expires_at.timestamp())
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(purpose: str, token: str, key: bytes, *, now: datetime) -> dict[str, Any]:
    """Return the data signed into `token`, or raise InvalidToken saying why."""
    try:
        body, mac = token.split(".")
        expected = hmac.new(key, body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            raise InvalidToken("signature does not match")
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:
        if isinstance(exc, InvalidToken):
            raise
        raise InvalidToken("malformed token") from exc
    if payload.get("p") != purpose:
        raise InvalidToken(f"token is for {payload.get('p')!r}, not {purpose!r}")
    if "x" in payload and now.timestamp() > payload["x"]:
        raise InvalidToken("token has expired")
    data = payload.get("d")
    if not isinstance(data, dict):
        raise InvalidToken("malformed token")
    return data


# -- short tokens ------------------------------------------------------------------------
# A number and the first 80 bits of its HMAC in lower-case hex: short enough for the local
# part of an email address (at most 64 characters) and unharmed by mail systems that fold
# its case. One canonical spelling: no leading zeros, lower case (compare folded input).
_SHORT = re.compile(r"(0|[1-9][0-9]{0,18})-([0-9a-f]{20})")


def _short_mac(purpose: str, number: int, key: bytes) -> str:
    return hmac.new(key, f"{purpose}:{number}".encode(), hashlib.sha256).hexdigest()[:20]


def short_sign(purpose: str, number: int, key: bytes) -> str:
    """`<number>-<mac>`: a token naming `number` for `purpose`, signed with `key`."""
    return f"{number}-{_short_mac(purpose, number, key)}"


def short_verify(purpose: str, token: str, key: bytes) -> int:
    """The number a `short_sign` token names, or InvalidToken."""
    found = _SHORT.fullmatch(token)
    if found is None:
        raise InvalidToken("malformed token")
    number = int(found.group(1))
    if not hmac.compare_digest(found.group(2), _short_mac(purpose, number, key)):
        raise InvalidToken("signature does not match")
    return number
