"""Every escalation trigger is worded truthfully, with a score beside it that agrees."""

from __future__ import annotations

import pytest

from leadops.sales.triggers import TRIGGER_LABELS, trigger_label, trigger_words


@pytest.mark.parametrize(
    ("trigger", "detail", "label", "score_note"),
    [
        (
            "imported_sql",
            "csv:trade-fair.csv",
            "was imported as sales-qualified (SQL) from csv:trade-fair.csv",
            "score 17: the SQL stage came from the import, not from the score",
        ),
        (
            "imported_sql",
            None,
            "was imported as sales-qualified (SQL) from an unknown source",
            "score 17: the SQL stage came from the import, not from the score",
        ),
        (
            "sql_threshold",
            "score 85 reached the sql threshold 80",
            "crossed the sales-qualified (SQL) score threshold "
            "(score 85 reached the sql threshold 80)",
            "score 17",
        ),
        # a row from before the detail was recorded
        ("sql_threshold", None, "crossed the sales-qualified (SQL) score threshold", "score 17"),
        ("demo_requested", None, "requested a demo", "score 17"),
        ("appointment_booked", None, "booked a meeting", "score 17"),
        ("contact_request", None, "asked to be contacted", "score 17"),
        ("pricing_request", None, "asked for pricing", "score 17"),
        ("trial_started", None, "started a trial", "score 17"),
        ("reply_intent", "whatsapp", "replied on WhatsApp with buying intent", "score 17"),
        ("reply_intent", "email", "replied on email with buying intent", "score 17"),
        ("reply_intent", None, "replied with buying intent", "score 17"),
        ("retry_due", None, "is due to be tried again (closed as not ready before)", "score 17"),
        ("webinar_attended", None, "webinar attended", "score 17"),  # a trigger with no words
    ],
)
def test_each_trigger_says_what_happened(
    trigger: str, detail: str | None, label: str, score_note: str
) -> None:
    words = trigger_words(trigger, detail, 17)
    assert (words.label, words.score_note) == (label, score_note)
    assert trigger_label(trigger, detail, 17) == label


def test_only_a_crossing_speaks_of_the_threshold() -> None:
    for trigger in TRIGGER_LABELS:
        words = trigger_words(trigger, None, 0)
        assert ("threshold" in words.label) == (trigger == "sql_threshold"), trigger
