"""SMS text: how many segments a message costs, and what the first SMS to a lead carries.

A single SMS holds 160 GSM-7 characters (the characters of the GSM 03.38 default alphabet;
those of its extension table, such as `€` and `[`, count twice) or 70 UCS-2 characters
once any character falls outside that alphabet. A longer message is split into segments
of 153 GSM-7 or 67 UCS-2 characters, each billed as one message. Characters outside the
Basic Multilingual Plane (most emoji) take two UCS-2 units.

The first SMS a lead receives names the sender and says how to opt out: `first_sms`
prefixes the sender's name and appends OPT_OUT_LINE unless the text already has them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
OPT_OUT_LINE = "Reply STOP to opt out"
_STOP = re.compile(r"\bSTOP\b")


@dataclass(frozen=True)
class Segments:
    """The encoding a message needs, its length in that encoding's units and its parts."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int
    segments: int

    def __str__(self) -> str:
        plural = "" if self.segments == 1 else "s"
        return f"{self.segments} segment{plural} ({self.encoding}, {self.units} characters)"


def sms_segments(text: str) -> Segments:
    """The segments an SMS of `text` is sent as."""
    if all(char in GSM7_BASIC or char in GSM7_EXTENDED for char in text):
        units = sum(2 if char in GSM7_EXTENDED else 1 for char in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = sum(2 if ord(char) > 0xFFFF else 1 for char in text)
        single, part, encoding = 70, 67, "UCS-2"
    if units <= single:
        return Segments(encoding, units, 1 if units else 0)
    return Segments(encoding, units, -(-units // part))


def first_sms(body: str, sender: str) -> str:
    """The first SMS to a lead: `body` led by the sender's name and closed by the opt-out
    line, each added only when the text lacks it."""
    text = body.strip()
    named = re.search(rf"(?<!\w){re.escape(sender)}(?!\w)", text, re.IGNORECASE)
    if sender and not named:
        text = f"{sender}: {text}"
    if not _STOP.search(text):
        text = f"{text}\n{OPT_OUT_LINE}"
    return text
