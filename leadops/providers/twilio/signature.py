"""Twilio's X-Twilio-Signature: an HMAC-SHA1 of the URL it called and the form fields."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator


def verify_twilio(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """True when X-Twilio-Signature matches the full URL Twilio called and the form fields."""
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))
