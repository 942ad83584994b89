"""Public keys given in settings: loaded (and so checked) with `cryptography`.

The SendGrid Event Webhook verification key is checked when settings load and used by
`leadops.providers.sendgrid.signature`; both load it here, so a bad key fails the same way.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key


@lru_cache(maxsize=4)
def ec_public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    """Load an ECDSA verification key (base64 DER SubjectPublicKeyInfo)."""
    try:
        key = load_der_public_key(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a base64 DER public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve (ECDSA) public key")
    return key
