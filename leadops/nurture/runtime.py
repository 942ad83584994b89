"""What a nurture tick needs, loaded and checked once: settings, database, config, channels."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from leadops.core.db import ensure_ready, make_engine
from leadops.core.settings import Settings
from leadops.delivery.campaigns import (
    Campaign,
    StoredCampaigns,
    load_campaigns,
    whatsapp_steps_without_template,
)
from leadops.delivery.render import Renderer, load_renderer
from leadops.nurture.segments import SegmentConfig, load_segments
from leadops.providers.base import ChannelSender
from leadops.providers.select import build_channels, check_channel_config


@dataclass
class Runtime:
    """Everything a tick needs, loaded once: settings, database, config, templates, channels."""

    settings: Settings
    engine: Engine
    campaigns: dict[str, Campaign]
    segments: SegmentConfig
    renderer: Renderer
    channels: dict[str, ChannelSender]
    stored: StoredCampaigns = field(default_factory=StoredCampaigns)  # versions never change


def load_runtime(settings: Settings, *, engine: Engine | None = None) -> Runtime:
    """Load and check config, templates folder and database; fail early with clear errors."""
    campaigns = load_campaigns(settings.config_dir)
    segments = load_segments(settings.config_dir, set(campaigns))
    check_channel_config(settings, whatsapp_steps_without_template(campaigns))
    engine = engine or make_engine(settings.resolved_database_url)
    ensure_ready(engine)
    renderer = load_renderer(settings)
    return Runtime(
        settings=settings,
        engine=engine,
        campaigns=campaigns,
        segments=segments,
        renderer=renderer,
        channels=build_channels(settings),
    )
