"""SMS segments (GSM-7 160/153, UCS-2 70/67) and what the first SMS to a lead carries."""

from __future__ import annotations

import pytest

from leadops.delivery.sms_text import OPT_OUT_LINE, Segments, first_sms, sms_segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Segments("GSM-7", 0, 0)),
        ("a" * 160, Segments("GSM-7", 160, 1)),
        ("a" * 161, Segments("GSM-7", 161, 2)),
        ("a" * 306, Segments("GSM-7", 306, 2)),
        ("a" * 307, Segments("GSM-7", 307, 3)),
        ("Prices from 10€ [today]", Segments("GSM-7", 26, 1)),  # € [ ] take two each
        ("a" * 159 + "€", Segments("GSM-7", 161, 2)),
        ("Grüße aus Köln, ¿qué tal? Ça va", Segments("GSM-7", 31, 1)),
        ("ç" * 70, Segments("UCS-2", 70, 1)),  # lower-case ç is not in GSM-7
        ("ç" * 71, Segments("UCS-2", 71, 2)),
        ("Hi 👋" + "a" * 66, Segments("UCS-2", 71, 2)),  # the emoji is two UTF-16 units
        ("Łódź " * 27, Segments("UCS-2", 135, 3)),
    ],
)
def test_segments(text: str, expected: Segments) -> None:
    assert sms_segments(text) == expected


def test_segments_read_for_people() -> None:
    assert str(sms_segments("a" * 200)) == "2 segments (GSM-7, 200 characters)"
    assert str(sms_segments("hi")) == "1 segment (GSM-7, 2 characters)"


def test_first_sms_names_the_sender_and_says_how_to_stop() -> None:
    text = first_sms("  Hi Amara, the guide: https://x.example/g\n", "Northwind")
    assert text == f"Northwind: Hi Amara, the guide: https://x.example/g\n{OPT_OUT_LINE}"


def test_first_sms_keeps_a_sender_and_stop_line_already_written() -> None:
    body = "Hi, it's Maya from Northwind. Text STOP to end these messages."
    assert first_sms(body, "Northwind") == body
    # "stop" inside a word or lower case is not the keyword: the line is added
    assert first_sms("Northwind: a non-stop week", "Northwind").endswith(OPT_OUT_LINE)
    # a short sender name inside another word is not the sender named
    assert first_sms("Unwanted? Reply STOP", "NW") == "NW: Unwanted? Reply STOP"
