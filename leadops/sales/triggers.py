"""Why a lead was escalated, in words: the one place the trigger wording lives (rep and
manager emails, WhatsApp and Slack texts, the hand-off page, the CLI list).

An escalation records its trigger and, when it is made, a `trigger_detail` saying what
was true then: the import source of a lead imported at SQL, the score change that crossed
the SQL threshold, the channel a hand was raised on. Rows from before the detail existed
are worded from the trigger alone.
"""

from __future__ import annotations

from dataclasses import dataclass

SQL_ESCALATION = "sql_threshold"  # the lead's score took it to the SQL stage
IMPORTED_SQL = "imported_sql"  # the lead came in at the SQL stage (an import set it)
RETRY_DUE = "retry_due"  # a lead once closed not ready, due to be tried again
# One crossing of the SQL stage, whichever of the two it was: escalated once between them.
SQL_TRIGGERS = frozenset({SQL_ESCALATION, IMPORTED_SQL})
# Triggers that are not a hand raised by the lead (no hand-off intro by default).
NOT_HAND_RAISES = frozenset({*SQL_TRIGGERS, RETRY_DUE})

TRIGGER_LABELS: dict[str, str] = {
    SQL_ESCALATION: "crossed the sales-qualified (SQL) score threshold",
    IMPORTED_SQL: "was imported as sales-qualified (SQL)",
    RETRY_DUE: "is due to be tried again (closed as not ready before)",
    "demo_requested": "requested a demo",
    "appointment_booked": "booked a meeting",
    "reply_intent": "replied with buying intent",
    "contact_request": "asked to be contacted",
    "pricing_request": "asked for pricing",
    "trial_started": "started a trial",
}

# The channel a hand-raise came in on, when it is not a web form or booking (email).
RAISED_ON: dict[str, str] = {"reply_intent": "whatsapp"}
CHANNEL_NAMES = {"whatsapp": "WhatsApp", "email": "email"}


def raised_on(trigger: str) -> str:
    """The channel the lead raised a hand on: WhatsApp for a reply, else email."""
    return RAISED_ON.get(trigger, "email")


@dataclass(frozen=True)
class TriggerWords:
    label: str  # "requested a demo", after the lead's name
    score_note: str  # the score, worded so it never contradicts the label


def trigger_words(trigger: str, detail: str | None, score: int) -> TriggerWords:
    """What the escalation's trigger says, with the score beside it."""
    base = TRIGGER_LABELS.get(trigger, trigger.replace("_", " "))
    if trigger == IMPORTED_SQL:
        source = detail or "an unknown source"
        return TriggerWords(
            f"was imported as sales-qualified (SQL) from {source}",
            f"score {score}: the SQL stage came from the import, not from the score",
        )
    if trigger == SQL_ESCALATION:
        label = f"{base} ({detail})" if detail else base
        return TriggerWords(label, f"score {score}")
    if trigger == "reply_intent" and detail in CHANNEL_NAMES:
        return TriggerWords(
            f"replied on {CHANNEL_NAMES[detail]} with buying intent", f"score {score}"
        )
    label = f"{base} ({detail})" if detail else base
    return TriggerWords(label, f"score {score}")


def trigger_label(trigger: str, detail: str | None = None, score: int = 0) -> str:
    """The trigger's wording alone (see `trigger_words`)."""
    return trigger_words(trigger, detail, score).label
