"""Render messages from Jinja2 templates in a sandbox.

Templates live in templates/email/<campaign>/<step>.{subject,html,txt}.j2 and
templates/whatsapp/<campaign>/<step>.txt.j2 (SMS: templates/sms/<campaign>/<step>.txt.j2).
An A/B variant of a step may have its own parts, <step>.<variant>.<part>.j2 (e.g.
day-1.b.subject.j2); a part it lacks is the step's. Undefined names are errors (StrictUndefined)
and HTML is autoescaped. Every failure becomes a RenderError naming template and line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from leadops.core.configfile import ConfigError
from leadops.core.settings import Settings
from leadops.models.vocab import Channel


class RenderError(Exception):
    """A template failed to load or render; `where` is `template:line`."""

    def __init__(self, template: str, line: int | None, message: str) -> None:
        self.template = template
        self.line = line
        self.message = message
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def template_names(
    channel: str, campaign: str, step: str, variant: str | None = None
) -> dict[str, str]:
    """The template of each part of a message (a variant's own, without fallback)."""
    name = f"{step}.{variant}" if variant else step
    if channel == Channel.EMAIL:
        base = f"email/{campaign}/{name}"
        return {part: f"{base}.{part}.j2" for part in ("subject", "html", "txt")}
    if channel in (Channel.WHATSAPP, Channel.SMS):
        return {"body": f"{channel}/{campaign}/{name}.txt.j2"}
    raise ValueError(f"unknown channel {channel!r}")


def _error_line(exc: BaseException) -> int | None:
    """The template line Jinja recorded in the traceback for a runtime error."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _error_template(exc: BaseException, fallback: str) -> str:
    if isinstance(exc, TemplateSyntaxError) and exc.name:
        return exc.name
    tb = exc.__traceback__
    name = fallback
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            name = filename
        tb = tb.tb_next
    return name


class Renderer:
    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(templates_dir)),
            undefined=StrictUndefined,
            autoescape=select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False, default=False
            ),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self._inline: dict[str, Template] = {}
        # Per loaded renderer, as auto_reload is off (compiled templates are kept by the
        # environment's own cache): the templates each message part renders (`names`, which
        # looks for variant files on disk).
        self._names: dict[tuple[str, str, str, str | None], dict[str, str]] = {}
        self.reported: set[str] = set()  # render errors already logged (each is logged once)

    def log_once(self, log: logging.Logger, touch_id: int, exc: Exception) -> None:
        """Log a template's error once per loaded renderer (a command, a flow run, a whole
        simulation), not once per touch and tick; the touches keep it in their `error`."""
        if str(exc) in self.reported:
            log.debug("touch %s held: %s", touch_id, exc)
            return
        self.reported.add(str(exc))
        log.error("touch %s held (logged once; other touches wait too): %s", touch_id, exc)

    def names(
        self, channel: str, campaign: str, step: str, variant: str | None = None
    ) -> dict[str, str]:
        """The templates a message renders: each part the variant has, else the step's."""
        key = (channel, campaign, step, variant)
        names = self._names.get(key)
        if names is None:
            names = template_names(channel, campaign, step)
            if variant:
                own = template_names(channel, campaign, step, variant)
                names |= {part: n for part, n in own.items() if (self.templates_dir / n).is_file()}
            self._names[key] = names
        return names

    def _relative(self, path: str) -> str:
        try:
            return Path(path).resolve().relative_to(self.templates_dir.resolve()).as_posix()
        except ValueError:
            return path

    def render(self, name: str, context: dict[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(context)
        except TemplateNotFound as exc:
            raise RenderError(name, None, f"template not found: {exc.name}") from exc
        except TemplateError as exc:
            where = self._relative(_error_template(exc, name))
            raise RenderError(where, _error_line(exc), exc.message or str(exc)) from exc
        except Exception as exc:  # a filter or test raising on bad data
            where = self._relative(_error_template(exc, name))
            raise RenderError(where, _error_line(exc), f"{type(exc).__name__}: {exc}") from exc

    def render_string(self, source: str, context: dict[str, Any], *, where: str) -> str:
        """Render a template given inline (e.g. a WhatsApp content variable from config)."""
        try:
            template = self._inline.get(source)
            if template is None:
                template = self._inline[source] = self.env.from_string(source)
            return template.render(context)
        except TemplateError as exc:
            raise RenderError(where, None, exc.message or str(exc)) from exc
        except Exception as exc:
            raise RenderError(where, None, f"{type(exc).__name__}: {exc}") from exc

    def _subject(self, name: str, context: dict[str, Any]) -> str:
        subject = " ".join(self.render(name, context).split())
        if not subject:
            raise RenderError(name, None, "subject renders empty")
        return subject

    def email(
        self, campaign: str, step: str, context: dict[str, Any], variant: str | None = None
    ) -> RenderedEmail:
        names = self.names(Channel.EMAIL, campaign, step, variant)
        subject = self._subject(names["subject"], context)
        return RenderedEmail(
            subject=subject,
            html=self.render(names["html"], context),
            text=self.render(names["txt"], context),
        )

    def email_errors(
        self, campaign: str, step: str, context: dict[str, Any], variant: str | None = None
    ) -> list[RenderError]:
        """Every part of an email (subject, html, txt) that fails to render; `email`
        stops at the first."""
        errors = []
        for part, name in self.names(Channel.EMAIL, campaign, step, variant).items():
            try:
                self._subject(name, context) if part == "subject" else self.render(name, context)
            except RenderError as exc:
                errors.append(exc)
        return errors

    def whatsapp(
        self, campaign: str, step: str, context: dict[str, Any], variant: str | None = None
    ) -> str:
        return self.text(Channel.WHATSAPP, campaign, step, context, variant)

    def text(
        self,
        channel: str,
        campaign: str,
        step: str,
        context: dict[str, Any],
        variant: str | None = None,
    ) -> str:
        """The body of a WhatsApp message or an SMS (its A/B variant's where it has its
        own), stripped; empty is an error."""
        name = self.names(channel, campaign, step, variant)["body"]
        body = self.render(name, context).strip()
        if not body:
            raise RenderError(name, None, "message renders empty")
        return body


def load_renderer(settings: Settings) -> Renderer:
    """The renderer of the templates folder; a missing folder is a ConfigError."""
    if not settings.templates_dir.is_dir():
        raise ConfigError(
            settings.templates_dir,
            None,
            "templates folder not found: run from the project folder or set LEADOPS_TEMPLATES_DIR",
        )
    return Renderer(settings.templates_dir)
