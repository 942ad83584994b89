"""What a nurture tick needs: the parts of the one runtime (`leadops.runtime.Runtime`)
that planning and dispatching read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from sqlalchemy.engine import Engine

from leadops.core.settings import Settings
from leadops.delivery.campaigns import Campaign, StoredCampaigns
from leadops.delivery.render import Renderer
from leadops.nurture.segments import SegmentConfig
from leadops.providers.base import ChannelSender


class Runtime(Protocol):
    """Settings, database, campaigns (and their stored versions), segments, templates and
    the touch channels' senders, loaded and checked once by the runtime builder."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def campaigns(self) -> dict[str, Campaign]: ...

    @property
    def segments(self) -> SegmentConfig: ...

    @property
    def renderer(self) -> Renderer: ...

    @property
    def channels(self) -> Mapping[str, ChannelSender]: ...

    @property
    def stored(self) -> StoredCampaigns: ...
