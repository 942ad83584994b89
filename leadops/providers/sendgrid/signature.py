"""The SendGrid signed Event Webhook: an ECDSA P-256 signature of timestamp + body."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from leadops.core.keys import ec_public_key


def verify_sendgrid(public_key: str, signature: str, timestamp: str, body: bytes) -> bool:
    """True when `signature` (base64 DER ECDSA) signs `timestamp + body` with the key."""
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        ec_public_key(public_key).verify(
            raw_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        return False
    return True
