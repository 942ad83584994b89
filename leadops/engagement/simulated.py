"""Simulated engagement: how leads answer the messages a simulation sends, from a model
file of open, click and reply probabilities per campaign step and A/B variant.

Each sent message gets its provider's events as if the webhooks had delivered them
(SendGrid delivered / open / click for an email, Twilio delivered / read and an inbound
reply for WhatsApp), stored in the webhook inbox and applied by the same rescore pass as
real ones, so scores, stages, KPIs and experiment results all follow. Every draw is a
hash of the model's seed, the message (campaign, step, channel) and the lead, so a
re-run of the same simulation engages the same leads.

The model file (YAML; see config/engagement.yaml):

    seed: 7
    default: {open: 0.3, click: 0.03, reply: 0.01}
    steps:
      educate/day-1: {open: 0.4, click: 0.04}        # the step, any variant
      educate/day-1/b: {open: 0.4, click: 0.06}      # one variant of it

A click counts as an open too; `reply` applies to WhatsApp messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from leadops.core.configfile import load_model
from leadops.engagement.inbox import store
from leadops.engagement.report import RescoreReport
from leadops.engagement.rescore import run_inbox
from leadops.models import LEADS, TOUCHES, Channel
from leadops.models.vocab import SENT_TOUCH_STATUSES
from leadops.nurture.experiments import unit_draw
from leadops.nurture.runtime import Runtime
from leadops.providers.inbound import InboxRecord
from leadops.providers.sendgrid.events import sendgrid_records
from leadops.providers.twilio.events import twilio_inbound_record, twilio_status_record

REPLY_TEXT = "Thanks, this is useful. Can you tell me more?"


class Rates(BaseModel):
    """The chance that one message is opened, clicked and replied to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    open: float = Field(default=0.0, ge=0.0, le=1.0)
    click: float = Field(default=0.0, ge=0.0, le=1.0)
    reply: float = Field(default=0.0, ge=0.0, le=1.0)


class EngagementModel(BaseModel):
    """Rates per `campaign/step` or `campaign/step/variant`, and for everything else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    default: Rates = Field(default_factory=Rates)
    steps: dict[str, Rates] = Field(default_factory=dict)

    def rates(self, campaign: str, step: str, variant: str | None) -> Rates:
        if variant is not None and f"{campaign}/{step}/{variant}" in self.steps:
            return self.steps[f"{campaign}/{step}/{variant}"]
        return self.steps.get(f"{campaign}/{step}", self.default)


def load_engagement_model(path: Path) -> EngagementModel:
    """Load a model file; a mistake is a ConfigError naming its line."""
    return load_model(path, EngagementModel)


@dataclass(frozen=True)
class Reaction:
    opened: bool
    clicked: bool
    replied: bool


def reaction(model: EngagementModel, touch: Any) -> Reaction:
    """How the lead answers this sent message (the same in every run of the model)."""
    rates = model.rates(touch.campaign, touch.step, touch.variant)
    where = f"{model.seed}/{touch.campaign}/{touch.step}/{touch.channel}"
    clicked = unit_draw(f"{where}/click", touch.lead_id) < rates.click
    opened = clicked or unit_draw(f"{where}/open", touch.lead_id) < rates.open
    replied = (
        touch.channel == Channel.WHATSAPP
        and unit_draw(f"{where}/reply", touch.lead_id) < rates.reply
    )
    return Reaction(opened, clicked, replied)


def _email_events(touch: Any, answer: Reaction) -> list[InboxRecord]:
    stamp = int(touch.sent_at.timestamp())
    kinds = ["delivered"] + ["open"] * answer.opened + ["click"] * answer.clicked
    events = [
        {
            "event": kind,
            "timestamp": stamp + 600 * (number + 1),
            "email": touch.email,
            "sg_event_id": f"sim-{touch.id}-{kind}",
            "sg_message_id": f"sim-{touch.id}",
            "touch_id": str(touch.id),
            "lead_id": str(touch.lead_id),
            **({"url": "https://example.invalid/simulated"} if kind == "click" else {}),
        }
        for number, kind in enumerate(kinds)
    ]
    return sendgrid_records(json.dumps(events).encode())


def _whatsapp_events(touch: Any, answer: Reaction) -> list[InboxRecord]:
    sid = f"SMsim{touch.id}"
    statuses = ["delivered"] + ["read"] * (answer.opened or answer.replied)
    records = [
        twilio_status_record({"MessageSid": sid, "MessageStatus": status}, touch.id)
        for status in statuses
    ]
    if answer.replied:
        params = {"MessageSid": f"SMsimreply{touch.id}", "From": f"whatsapp:{touch.phone}"}
        records.append(twilio_inbound_record(params | {"Body": REPLY_TEXT}))
    return records


def engage(
    runtime: Runtime, model: EngagementModel, since: datetime, until: datetime
) -> RescoreReport:
    """Answer the messages sent in [since, until) as the model says, then apply the
    events at `until` as the rescore pass does."""
    t = TOUCHES.c
    query = (
        sa.select(
            t.id, t.lead_id, t.campaign, t.step, t.variant, t.channel, t.sent_at,
            LEADS.c.email, LEADS.c.phone,
        )
        .select_from(TOUCHES.join(LEADS, LEADS.c.id == t.lead_id))
        .where(
            t.sent_at >= since,
            t.sent_at < until,
            t.status.in_([str(s) for s in SENT_TOUCH_STATUSES]),
        )
        .order_by(t.id)
    )  # fmt: skip
    with runtime.engine.connect() as conn:
        touches = conn.execute(query).all()
    records: list[InboxRecord] = []
    for touch in touches:
        answer = reaction(model, touch)
        if touch.channel == Channel.EMAIL:
            records += _email_events(touch, answer)
        elif touch.channel == Channel.WHATSAPP:
            records += _whatsapp_events(touch, answer)
    arrived = until - timedelta(seconds=1)
    if records:
        store(runtime.engine, records, arrived)
    return run_inbox(runtime, until)
