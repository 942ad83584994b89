"""Compose a touch into an OutgoingMessage: template context, rendering, unsubscribe link."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import product
from typing import Any

from leadops.core.settings import Settings
from leadops.core.tokens import sign
from leadops.delivery.campaigns import Campaign
from leadops.delivery.render import Renderer, RenderError
from leadops.delivery.sms_text import Segments, first_sms, sms_segments
from leadops.delivery.utm import tagged_links
from leadops.models import Channel, Lead
from leadops.providers.base import OutgoingMessage
from leadops.providers.sendgrid.inbound_parse import reply_address

UNSUBSCRIBE = "unsubscribe"

# Leads to render every template against: a full profile, one with only an email, and one
# whose fields would break unescaped HTML.
SAMPLE_LEAD: dict[str, Any] = {
    "first_name": "Amara",
    "last_name": "Nwosu",
    "full_name": "Amara Nwosu",
    "email": "amara.nwosu@harbor-logistics.example",
    "phone": "+447700900123",
    "company": "Harbor Logistics",
    "job_title": "Head of Operations",
    "industry": "logistics",
    "country": "GB",
    "lifecycle_stage": "mql",
    "company_size": 240,
    "grade": "B2",
    "band": "warm",
    "properties": {"budget": "approved", "timeline": "this_quarter"},
}
SAMPLE_LEADS: tuple[dict[str, Any], ...] = (
    SAMPLE_LEAD,
    {key: None for key in SAMPLE_LEAD}
    | {"email": "someone@example.com", "lifecycle_stage": "lead", "properties": {}},
    SAMPLE_LEAD | {"first_name": "<script>alert(1)</script>", "company": 'Smith & Sons "Ltd"'},
)
SAMPLE_UNSUBSCRIBE = "https://example.invalid/u/sample-token"


def unsubscribe_url(settings: Settings, lead_id: int, channel: str = "all") -> str:
    """A signed one-click unsubscribe link (served at /u/{token} by the webhooks app)."""
    token = sign(UNSUBSCRIBE, {"lead": lead_id, "channel": channel}, settings.signing_key())
    return f"{settings.public_url.rstrip('/')}/u/{token}"


def touch_reply_to(settings: Settings, touch_id: int) -> str:
    """The Reply-To of a nurture email: its signed address at LEADOPS_INBOUND_EMAIL_DOMAIN,
    so a reply arrives through SendGrid Inbound Parse naming the touch; empty (the
    channel's default) when no inbound domain is set."""
    domain = settings.inbound_email_domain
    return reply_address(domain, touch_id, settings.signing_key()) if domain else ""


def lead_context(lead: Lead) -> dict[str, Any]:
    names = [part for part in (lead.first_name, lead.last_name) if part]
    return {
        "first_name": lead.first_name,
        "last_name": lead.last_name,
        "full_name": " ".join(names) or None,
        "email": lead.email,
        "phone": lead.phone,
        "company": lead.company,
        "job_title": lead.job_title,
        "industry": lead.industry,
        "country": lead.country,
        "lifecycle_stage": lead.lifecycle_stage,
        "company_size": lead.company_size,
        "grade": lead.grade,
        "band": lead.band,
        # custom properties (config/properties.yaml): {{ lead.properties.get("timeline") }}
        "properties": dict(lead.properties or {}),
    }


def template_context(
    *,
    lead: dict[str, Any],
    campaign: Campaign,
    step_key: str,
    settings: Settings,
    unsubscribe: str,
    channel: str = Channel.EMAIL,
    variant: str | None = None,
) -> dict[str, Any]:
    """Everything a template may use (see templates/README.md); the campaign's links carry
    the UTM tags of this step on `channel` (leadops.delivery.utm)."""
    step = campaign.step(step_key)
    day = step.day_of(variant)
    return {
        "lead": lead,
        "rep": {
            "name": settings.default_rep_name,
            "first_name": settings.default_rep_name.split()[0],
            "email": settings.default_rep_email,
            "title": settings.default_rep_title,
        },
        "sender": {
            "company_name": settings.company_name,
            "website": settings.company_website,
            "postal_address": settings.postal_address,
            "name": settings.sender_name,
            "email": settings.sender_email,
        },
        "campaign": {"key": campaign.key, "name": campaign.name},
        "step": {"key": step.key, "day": day, "name": step.name, "variant": variant},
        "links": tagged_links(
            campaign.links,
            campaign.utm,
            campaign=campaign.key,
            step=step.key,
            channel=channel,
            own_url=settings.public_url,
        ),
        "unsubscribe_url": unsubscribe,
    }


def compose(
    *,
    touch_id: int,
    lead: Lead,
    channel: str,
    campaign: Campaign,
    step_key: str,
    renderer: Renderer,
    settings: Settings,
    now: datetime,
    variant: str | None = None,
    first_to_lead: bool = False,
) -> OutgoingMessage:
    """Render the touch's templates (its A/B `variant`'s where it has them) for this lead;
    `first_to_lead`: the lead's first SMS (it then names the sender and carries the opt-out
    line, leadops.delivery.sms_text.first_sms). Raises RenderError on a broken template."""
    assert lead.id is not None
    unsubscribe = unsubscribe_url(settings, lead.id)
    context = template_context(
        lead=lead_context(lead),
        campaign=campaign,
        step_key=step_key,
        settings=settings,
        unsubscribe=unsubscribe,
        channel=channel,
        variant=variant,
    )
    if channel == Channel.EMAIL:
        assert lead.email is not None
        email = renderer.email(campaign.key, step_key, context, variant)
        return OutgoingMessage(
            touch_id=touch_id,
            lead_id=lead.id,
            channel=channel,
            to=lead.email,
            campaign=campaign.key,
            step=step_key,
            created_at=now,
            to_name=context["lead"]["full_name"] or "",
            subject=email.subject,
            html=email.html,
            text=email.text,
            unsubscribe_url=unsubscribe,
            reply_to=touch_reply_to(settings, touch_id),
        )
    assert lead.phone is not None
    if channel == Channel.SMS:
        body = renderer.text(Channel.SMS, campaign.key, step_key, context, variant)
        return OutgoingMessage(
            touch_id=touch_id,
            lead_id=lead.id,
            channel=channel,
            to=lead.phone,
            campaign=campaign.key,
            step=step_key,
            created_at=now,
            body=first_sms(body, settings.resolved_sms_sender) if first_to_lead else body,
        )
    template = campaign.step(step_key).whatsapp_of(variant)
    variables = {
        str(name): renderer.render_string(
            source, context, where=f"campaign {campaign.key} {step_key} content_variables.{name}"
        )
        for name, source in template.get("content_variables", {}).items()
    }
    return OutgoingMessage(
        touch_id=touch_id,
        lead_id=lead.id,
        channel=channel,
        to=lead.phone,
        campaign=campaign.key,
        step=step_key,
        created_at=now,
        body=renderer.whatsapp(campaign.key, step_key, context, variant),
        unsubscribe_url=unsubscribe,
        session_open=whatsapp_session_open(lead, now, settings.whatsapp_session_hours),
        content_sid=template.get("content_sid", ""),
        content_variables=variables,
    )


def first_sms_to(done: set[tuple[int, str, str, str]], lead_id: int, channel: str) -> bool:
    """Whether a message on `channel` is an SMS and the lead's first: no SMS to the lead
    among `done`, the dispatcher's (lead, campaign, step, channel) of messages sent,
    sending or in doubt."""
    if channel != Channel.SMS:
        return False
    return not any(key[0] == lead_id and key[3] == Channel.SMS for key in done)


def whatsapp_session_open(lead: Lead, now: datetime, hours: int = 24) -> bool:
    """Whether the lead wrote to us within the last `hours`, so free text may be sent."""
    last = lead.last_inbound_at
    return last is not None and timedelta(0) <= now - last < timedelta(hours=hours)


@dataclass
class TemplateCheck:
    """What `check_all_templates` found: renders tried, renders that worked, every error
    in the order met (`distinct_errors` drops repeats), and per SMS step (`campaign/step`)
    the most segments it takes as a lead's first SMS (sender and opt-out line added)."""

    tried: int = 0
    rendered: int = 0
    errors: list[RenderError] = field(default_factory=list)
    sms: dict[str, Segments] = field(default_factory=dict)

    def count_sms(self, where: str, body: str, sender: str) -> None:
        """Keep the larger of `where`'s count so far and `body`'s as a first SMS."""
        found = sms_segments(first_sms(body, sender))
        known = self.sms.get(where)
        if known is None or (found.segments, found.units) > (known.segments, known.units):
            self.sms[where] = found

    @property
    def distinct_errors(self) -> list[RenderError]:
        distinct: list[RenderError] = []
        for error in self.errors:
            if all(str(error) != str(seen) for seen in distinct):
                distinct.append(error)
        return distinct


def check_all_templates(
    settings: Settings,
    campaigns: dict[str, Campaign],
    renderer: Renderer,
    *,
    samples: tuple[dict[str, Any], ...] = SAMPLE_LEADS,
    unsubscribe: str = SAMPLE_UNSUBSCRIBE,
) -> TemplateCheck:
    """Render every campaign step on each of its channels for each sample lead, with the
    runtime's renderer."""
    result = TemplateCheck()
    for campaign in campaigns.values():
        for step in campaign.steps:
            variants: list[str | None] = [variant.key for variant in step.variants] or [None]
            for channel, variant, sample in product(step.channels, variants, samples):
                context = template_context(
                    lead=sample,
                    campaign=campaign,
                    step_key=step.key,
                    settings=settings,
                    unsubscribe=unsubscribe,
                    channel=channel,
                    variant=variant,
                )
                result.tried += 1
                try:
                    if channel == "email":
                        errors = renderer.email_errors(campaign.key, step.key, context, variant)
                        if errors:
                            result.errors.extend(errors)
                            continue
                    else:
                        body = renderer.text(channel, campaign.key, step.key, context, variant)
                        if channel == Channel.SMS:
                            where = f"{campaign.key}/{step.key}" + (
                                f".{variant}" if variant else ""
                            )
                            result.count_sms(where, body, settings.resolved_sms_sender)
                    result.rendered += 1
                except RenderError as exc:
                    result.errors.append(exc)
    return result
