"""What a nurture tick needs: the parts of the one runtime (`leadops.runtime.Runtime`)
that planning and dispatching read."""

from __future__ import annotations

from typing import Protocol

from leadops.delivery.campaigns import Campaign
from leadops.delivery.workers import WorkerParts
from leadops.nurture.segments import SegmentConfig


class Runtime(WorkerParts, Protocol):
    """What a dispatcher process sends with (settings, database, templates, the touch
    channels' senders, stored campaign versions), plus the campaigns and segments that
    planning reads; loaded and checked once by the runtime builder."""

    @property
    def campaigns(self) -> dict[str, Campaign]: ...

    @property
    def segments(self) -> SegmentConfig: ...
