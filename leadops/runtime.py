"""The one runtime: settings, clock, database and the loaded config, built in one place and
handed to every flow, command and the web app.

`Runtime` loads each part the first time it is asked for (and only once), so a command
fails only on the parts it uses, with the part's own error: the engine (reachable, at the
latest schema), campaigns and their stored versions, segments, the renderer, the channels
(built once: the nurture tick, escalation, form confirmations and the web app share the
same senders), routing.yaml (optional: escalation is off without it) and intake.yaml.
`check()` loads everything, for commands that vouch for the whole config.

The lower layers take the runtime's parts, not the runtime: a nurture tick takes anything
shaped like `leadops.nurture.runtime.Runtime` (this class is), escalation takes
`escalation` (a `leadops.sales.runtime.EscalationRuntime` of the same parts).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cached_property

from sqlalchemy.engine import Engine

from leadops.core.clock import Clock, SystemClock
from leadops.core.db import ensure_ready, make_engine
from leadops.core.settings import Settings
from leadops.crm.config import CrmConfig, load_crm_config
from leadops.delivery.campaigns import (
    Campaign,
    StoredCampaigns,
    load_campaigns,
    whatsapp_steps_without_template,
)
from leadops.delivery.render import Renderer, load_renderer
from leadops.intake.config import IntakeConfig, load_intake_config
from leadops.intake.mapping import SourceRules, source_rules
from leadops.models import Channel
from leadops.nurture.segments import SegmentConfig, load_segments
from leadops.providers.base import ChannelSender
from leadops.providers.select import build_channels, check_channel_config
from leadops.providers.slack import SlackWebhookChannel
from leadops.sales.routing import RoutingConfig, load_routing
from leadops.sales.runtime import EscalationRuntime, routing_path

# The rescore hand-off's logger: "escalation is off" has always been logged under it.
handoff_log = logging.getLogger("leadops.handoff")


class Runtime:
    """Settings, clock, database and config of one process, each part loaded once."""

    def __init__(
        self, settings: Settings, *, engine: Engine | None = None, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self._given_engine = engine
        self.stored = StoredCampaigns()  # stored campaign versions never change

    @cached_property
    def database(self) -> Engine:
        """The database engine as made, not yet checked (`leadops doctor` checks it itself)."""
        if self._given_engine is not None:
            return self._given_engine
        return make_engine(self.settings.resolved_database_url)

    @cached_property
    def engine(self) -> Engine:
        """The database engine, checked reachable and at the latest schema."""
        engine = self.database
        try:
            ensure_ready(engine)
        except Exception:
            if self._given_engine is None:
                engine.dispose()
            raise
        return engine

    @cached_property
    def campaigns(self) -> dict[str, Campaign]:
        return load_campaigns(self.settings.config_dir)

    @cached_property
    def segments(self) -> SegmentConfig:
        return load_segments(self.settings.config_dir, set(self.campaigns))

    @cached_property
    def renderer(self) -> Renderer:
        """The templates folder's renderer; a missing folder is a ConfigError."""
        return load_renderer(self.settings)

    @cached_property
    def channels(self) -> Mapping[str, ChannelSender]:
        """The touch channels' senders (email, whatsapp, sms), as the settings choose them."""
        return build_channels(self.settings)

    @cached_property
    def slack(self) -> ChannelSender:
        return SlackWebhookChannel(timeout=self.settings.slack_timeout_seconds)

    @property
    def email(self) -> ChannelSender:
        """The email sender (form confirmations use it)."""
        return self.channels[Channel.EMAIL]

    @cached_property
    def intake(self) -> IntakeConfig:
        return load_intake_config(self.settings.config_dir)

    @cached_property
    def form_rules(self) -> dict[str, SourceRules]:
        """Each web form's rules (its values, the industries, fit scoring), read once:
        the same intake.yaml the forms themselves come from."""
        config_dir = self.settings.config_dir
        return {form.key: source_rules(form, self.intake, config_dir) for form in self.intake.forms}

    @cached_property
    def crm(self) -> CrmConfig:
        """config/crm.yaml (the HubSpot write-back), everything off without the file."""
        return load_crm_config(self.settings.config_dir)

    @cached_property
    def routing(self) -> RoutingConfig | None:
        """routing.yaml, or None (logged: escalation is off) when the file does not exist."""
        path = routing_path(self.settings)
        if not path.exists():
            handoff_log.warning("escalation is off: %s does not exist", path)
            return None
        return load_routing(path, self.settings.config_dir)

    @cached_property
    def escalation(self) -> EscalationRuntime | None:
        """What escalation needs, or None when there is no routing.yaml."""
        routing = self.routing
        if routing is None:
            return None
        return EscalationRuntime(
            settings=self.settings,
            engine=self.engine,
            routing=routing,
            renderer=self.renderer,
            channels={**self.channels, "slack": self.slack},
        )

    def require_escalation(self) -> EscalationRuntime:
        """The escalation parts for commands that need them: without routing.yaml it fails
        with load_routing's own error (the file not found)."""
        if not routing_path(self.settings).exists():
            load_routing(routing_path(self.settings))  # raises the ConfigError
        escalation = self.escalation
        assert escalation is not None
        return escalation

    def dispose(self) -> None:
        """Close the connections of an engine this runtime made (a given one is the caller's)."""
        if self._given_engine is None and "database" in self.__dict__:
            self.database.dispose()

    def nurture(self) -> Runtime:
        """Load and check what a nurture tick needs, in the order (and with the errors) it
        always had: campaigns, segments, the channel choice, database, templates folder."""
        _ = self.campaigns, self.segments
        return self.dispatch()

    def dispatch(self) -> Runtime:
        """Load and check what a dispatcher needs, in the nurture tick's order: campaigns,
        the channel choice, database, templates folder, channels."""
        _ = self.campaigns
        check_channel_config(self.settings, whatsapp_steps_without_template(self.campaigns))
        _ = self.engine, self.renderer, self.channels
        return self

    def check(self) -> Runtime:
        """Load every part now, so a broken file fails here with its own error."""
        self.nurture()
        _ = self.intake, self.escalation
        return self


def build_runtime(
    settings: Settings, *, engine: Engine | None = None, clock: Clock | None = None
) -> Runtime:
    """The one runtime builder (nothing is loaded until asked for)."""
    return Runtime(settings, engine=engine, clock=clock)


def load_runtime(settings: Settings, *, engine: Engine | None = None) -> Runtime:
    """A runtime with the nurture parts loaded and checked (fails early, clear errors)."""
    return build_runtime(settings, engine=engine).nurture()


def load_escalation_runtime(
    settings: Settings, *, engine: Engine | None = None
) -> EscalationRuntime:
    """The escalation parts of a new runtime; fails when routing.yaml is missing or bad."""
    return build_runtime(settings, engine=engine).require_escalation()


def worker_runtime(settings: Settings) -> Runtime:
    """The runtime of one dispatcher process of `leadops run --workers N`, with the dispatch
    parts loaded and checked: the `build` handed to leadops.delivery.workers.run_workers,
    which calls it (by reference) in each process it starts."""
    runtime = build_runtime(settings)
    try:
        return runtime.dispatch()
    except Exception:
        runtime.dispose()
        raise
