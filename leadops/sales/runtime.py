"""What escalation needs: the escalation parts of the one runtime (`leadops.runtime`),
passed to every escalation, SLA and notification call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from leadops.core.settings import Settings
from leadops.delivery.render import Renderer
from leadops.providers.base import ChannelSender
from leadops.sales.routing import RoutingConfig


@dataclass(frozen=True)
class EscalationRuntime:
    """Settings, database, routing.yaml, templates and channels, as the runtime loaded them.

    `channels` maps email, whatsapp, sms and slack to ChannelSenders: the very senders nurture
    uses (file outbox by default, the providers when configured) plus the Slack webhook.
    """

    settings: Settings
    engine: Engine
    routing: RoutingConfig
    renderer: Renderer
    channels: Mapping[str, ChannelSender]


def routing_path(settings: Settings) -> Path:
    """Where routing.yaml is read from (LEADOPS_ROUTING_FILE, else the config folder)."""
    return settings.routing_file or settings.config_dir / "routing.yaml"
