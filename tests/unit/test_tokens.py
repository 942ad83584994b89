"""Unit tests for leadops.core.tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadops.core.tokens import InvalidToken, sign, verify

KEY = b"k" * 32
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_roundtrip() -> None:
    token = sign("unsubscribe", {"lead": 5, "channel": "all"}, KEY)
    assert verify("unsubscribe", token, KEY, now=NOW) == {"lead": 5, "channel": "all"}


def test_token_is_url_safe() -> None:
    token = sign("unsubscribe", {"lead": 5, "x": "?&/+= "}, KEY)
    assert all(c.isalnum() or c in "-_." for c in token)


def test_tampered_payload_rejected() -> None:
    token = sign("unsubscribe", {"lead": 5}, KEY)
    other = sign("unsubscribe", {"lead": 6}, KEY)
    forged = other.split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(InvalidToken, match="signature"):
        verify("unsubscribe", forged, KEY, now=NOW)


def test_tampered_signature_rejected() -> None:
    token = sign("unsubscribe", {"lead": 5}, KEY)
    body, mac = token.split(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    with pytest.raises(InvalidToken):
        verify("unsubscribe", f"{body}.{flipped}", KEY, now=NOW)


def test_wrong_key_rejected() -> None:
    token = sign("unsubscribe", {"lead": 5}, KEY)
    with pytest.raises(InvalidToken, match="signature"):
        verify("unsubscribe", token, b"other-key", now=NOW)


def test_wrong_purpose_rejected() -> None:
    token = sign("confirm", {"lead": 5}, KEY)
    with pytest.raises(InvalidToken, match="'confirm', not 'unsubscribe'"):
        verify("unsubscribe", token, KEY, now=NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", "e30.AAAA"])
def test_malformed_rejected(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify("unsubscribe", token, KEY, now=NOW)


def test_expiry() -> None:
    expires = NOW + timedelta(hours=1)
    token = sign("ack", {"a": 1}, KEY, expires_at=expires)
    assert verify("ack", token, KEY, now=NOW) == {"a": 1}
    assert verify("ack", token, KEY, now=expires) == {"a": 1}
    with pytest.raises(InvalidToken, match="expired"):
        verify("ack", token, KEY, now=expires + timedelta(seconds=1))


def test_no_expiry_never_expires() -> None:
    token = sign("ack", {"a": 1}, KEY)
    assert verify("ack", token, KEY, now=NOW + timedelta(days=3650)) == {"a": 1}


def test_only_the_canonical_spelling_of_a_token_is_accepted() -> None:
    token = sign("unsubscribe", {"lead": 5, "channel": "all"}, KEY)
    body, mac = token.split(".")
    assert verify("unsubscribe", token, KEY, now=NOW)
    standard = mac.replace("-", "+").replace("_", "/")
    variants = {
        f"{body}.{mac}=",  # padding
        f"{body}.{mac}==",
        f"{body}=.{mac}",
        f"{body}.{mac} ",  # stray characters base64 decoding would skip
        f"{body}.{mac[:10]}!{mac[10:]}",
        f"{body}.{mac}\n",
    }
    if standard != mac:
        variants.add(f"{body}.{standard}")  # the standard alphabet
    # The same bits spelled differently: the unused low bits of the last character set.
    last = mac[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused_bits = {2: 0b1111, 3: 0b11}.get(len(mac) % 4, 0)
    if unused_bits:
        twin = alphabet[alphabet.index(last) ^ 1]
        variants.add(f"{body}.{mac[:-1]}{twin}")
    for variant in variants:
        with pytest.raises(InvalidToken):
            verify("unsubscribe", variant, KEY, now=NOW)
