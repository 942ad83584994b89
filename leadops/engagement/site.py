"""Site and product events: the X-Leadops-Signature HMAC-SHA256 of the raw body."""

from __future__ import annotations

import hashlib
import hmac


def site_signature(secret: str, body: bytes) -> str:
    """The X-Leadops-Signature header value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_site(secret: str, body: bytes, header: str) -> bool:
    """True when the X-Leadops-Signature header signs `body` (any header text is safe)."""
    given = header.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(site_signature(secret, body).encode(), given)
