"""Choosing the sender of each delivery channel from settings, and checking the choice.

`build_channels` picks the file outbox or the provider (SendGrid, Twilio) per channel;
`check_channel_config` refuses a provider the campaigns could not send through.
"""

from __future__ import annotations

from leadops.core.configfile import ConfigError
from leadops.core.settings import Settings
from leadops.models import Channel
from leadops.providers.base import ChannelSender
from leadops.providers.outbox import OutboxChannel


def build_channels(settings: Settings) -> dict[str, ChannelSender]:
    """The sender of each channel, as chosen by LEADOPS_EMAIL_CHANNEL / _WHATSAPP_CHANNEL /
    _SMS_CHANNEL."""
    root = settings.resolved_outbox_dir
    channels: dict[str, ChannelSender] = {}
    if settings.email_channel == "sendgrid":
        from leadops.providers.sendgrid.send import SendGridChannel

        channels[Channel.EMAIL] = SendGridChannel(settings)
    else:
        channels[Channel.EMAIL] = OutboxChannel(
            root,
            Channel.EMAIL,
            sender_name=settings.sender_name,
            sender_email=settings.sender_email,
        )
    if settings.whatsapp_channel == "twilio":
        from leadops.providers.twilio.send import TwilioWhatsAppChannel

        channels[Channel.WHATSAPP] = TwilioWhatsAppChannel(settings)
    else:
        channels[Channel.WHATSAPP] = OutboxChannel(root, Channel.WHATSAPP)
    if settings.sms_channel == "twilio":
        from leadops.providers.twilio.sms import TwilioSmsChannel

        channels[Channel.SMS] = TwilioSmsChannel(settings)
    else:
        channels[Channel.SMS] = OutboxChannel(root, Channel.SMS)
    return channels


def check_channel_config(settings: Settings, whatsapp_steps_without_template: list[str]) -> None:
    """Refuse to start Twilio WhatsApp when a WhatsApp step (`campaign/step`, as listed by
    the caller) has no approved template: outside a lead's 24-hour window free text is
    refused, so it could never be sent."""
    if settings.whatsapp_channel != "twilio":
        return
    missing = whatsapp_steps_without_template
    if missing:
        raise ConfigError(
            settings.config_dir / "campaigns",
            None,
            "LEADOPS_WHATSAPP_CHANNEL=twilio needs an approved template for every WhatsApp "
            f"step (whatsapp.content_sid); missing for {', '.join(missing)}",
        )
