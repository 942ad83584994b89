"""Webhook signature checks: SendGrid signed Event Webhook (ECDSA P-256), Twilio
X-Twilio-Signature (HMAC-SHA1) and site events (HMAC-SHA256 of the raw body)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from twilio.request_validator import RequestValidator


@lru_cache(maxsize=4)
def sendgrid_public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    """Load SendGrid's verification key (base64 DER SubjectPublicKeyInfo)."""
    try:
        key = load_der_public_key(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a base64 DER public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve (ECDSA) public key")
    return key


def verify_sendgrid(public_key: str, signature: str, timestamp: str, body: bytes) -> bool:
    """True when `signature` (base64 DER ECDSA) signs `timestamp + body` with the key."""
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        sendgrid_public_key(public_key).verify(
            raw_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        return False
    return True


def verify_twilio(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """True when X-Twilio-Signature matches the full URL Twilio called and the form fields."""
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def site_signature(secret: str, body: bytes) -> str:
    """The X-Leadops-Signature header value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_site(secret: str, body: bytes, header: str) -> bool:
    """True when the X-Leadops-Signature header signs `body` (any header text is safe)."""
    given = header.strip().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(site_signature(secret, body).encode(), given)
