"""The escalation runtime: settings, database, routing.yaml, templates and channels, loaded
once and passed to every escalation, SLA and notification call.

`escalation_runtime_or_none` is how the rescore paths turn escalation on only when a
routing.yaml exists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from leadops.core.db import ensure_ready, make_engine
from leadops.core.settings import Settings
from leadops.delivery.render import Renderer
from leadops.providers.base import ChannelSender
from leadops.providers.select import build_channels
from leadops.providers.slack import SlackWebhookChannel
from leadops.sales.routing import RoutingConfig, load_routing

# The rescore hand-off's logger: "escalation is off" has always been logged under it.
log = logging.getLogger("leadops.handoff")


@dataclass
class EscalationRuntime:
    """What escalation needs, loaded once: settings, database, routing, templates, channels.

    `channels` maps email, whatsapp and slack to ChannelSenders: the same senders nurture
    uses (file outbox by default, the providers when configured) plus the Slack webhook.
    """

    settings: Settings
    engine: Engine
    routing: RoutingConfig
    renderer: Renderer
    channels: Mapping[str, ChannelSender]


def routing_path(settings: Settings) -> Path:
    return settings.routing_file or settings.config_dir / "routing.yaml"


def load_escalation_runtime(
    settings: Settings,
    *,
    engine: Engine | None = None,
    channels: Mapping[str, ChannelSender] | None = None,
) -> EscalationRuntime:
    """Load routing.yaml and the channels; fail early with clear errors."""
    routing = load_routing(routing_path(settings))
    if engine is None:
        engine = make_engine(settings.resolved_database_url)
    ensure_ready(engine)
    if channels is None:
        channels = {
            **build_channels(settings),
            "slack": SlackWebhookChannel(timeout=settings.slack_timeout_seconds),
        }
    return EscalationRuntime(
        settings=settings,
        engine=engine,
        routing=routing,
        renderer=Renderer(settings.templates_dir),
        channels=channels,
    )


def escalation_runtime_or_none(settings: Settings, engine: Any = None) -> EscalationRuntime | None:
    """The escalation runtime, or None (logged) when there is no routing.yaml."""
    if not routing_path(settings).exists():
        log.warning("escalation is off: %s does not exist", routing_path(settings))
        return None
    return load_escalation_runtime(settings, engine=engine)
