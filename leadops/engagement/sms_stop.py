"""An SMS STOP honoured on arrival: the Twilio inbound webhook suppresses SMS for the
number's leads before the rescore run scores and records the event (which then finds the
suppression in place). Twilio has blocked the number already; this keeps any SMS from
being queued to it meanwhile."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.delivery.suppression import suppress
from leadops.models import LEADS, Channel
from leadops.models.vocab import SuppressionReason
from leadops.providers.twilio.events import (
    SMS_OPT_OUT_KEYWORDS,
    fold_keyword,
    inbound_channel,
    inbound_text,
)


def stop_sms_now(engine: Engine, params: Mapping[str, Any], now: datetime) -> int:
    """If the inbound message is an SMS of exactly one of Twilio's opt-out keywords,
    suppress SMS (`sms_opt_out`) for every lead with its number; returns how many were
    newly suppressed."""
    if inbound_channel(params) != Channel.SMS:
        return 0
    if fold_keyword(inbound_text(params)) not in SMS_OPT_OUT_KEYWORDS:
        return 0
    phone = str(params.get("From", "")).strip()
    with engine.begin() as connection:
        lead_ids = (
            connection.execute(sa.select(LEADS.c.id).where(LEADS.c.phone == phone)).scalars().all()
        )
        reason = SuppressionReason.SMS_OPT_OUT
        return sum(bool(suppress(connection, i, [Channel.SMS], reason, now)) for i in lead_ids)
