"""`leadops templates`: check every template and preview a rendered message."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from leadops.cli.common import (
    CliError,
    _build,
    _settings,
    console,
    err,
)
from leadops.cli.output import Format, emit
from leadops.delivery.sms_text import Segments, first_sms, sms_segments

templates_app = typer.Typer(help="Check and preview message templates.", no_args_is_help=True)


@templates_app.command("check")
def templates_check() -> None:
    """Render every campaign step on every channel against sample leads; list each error,
    and the segments each SMS step takes as a lead's first SMS (a warning above
    LEADOPS_SMS_MAX_SEGMENTS).

    Example: leadops templates check
    """
    from leadops.delivery.compose import check_all_templates

    runtime = _build(_settings())
    result = check_all_templates(runtime.settings, runtime.campaigns, runtime.renderer)
    errors, checked = result.distinct_errors, result.tried
    if errors:
        emit(
            [{"template": e.template, "line": e.line, "error": e.message} for e in errors],
            ["template", "line", "error"],
            Format.TABLE,
            title=f"{len(errors)} template error(s)",
            console=err,
        )
        raise typer.Exit(1)
    console.print(f"[green]all templates render[/] ({checked} renders checked)")
    _sms_segments(result.sms, runtime.settings.sms_max_segments)


def _sms_segments(found: dict[str, Segments], limit: int) -> None:
    """The SMS steps' segment counts, and a warning for each above `limit`."""
    if not found:
        return
    rows = [
        {
            "sms step": where,
            "segments": seg.segments,
            "encoding": seg.encoding,
            "characters": seg.units,
        }
        for where, seg in sorted(found.items())
    ]
    emit(
        rows,
        ["sms step", "segments", "encoding", "characters"],
        Format.TABLE,
        title="SMS segments (as a lead's first SMS, the longest sample)",
        console=console,
    )
    for where, seg in sorted(found.items()):
        if seg.segments > limit:
            err.print(
                f"warning: {where} takes {seg} as a first SMS, above "
                f"LEADOPS_SMS_MAX_SEGMENTS={limit}; each segment is billed as one message",
                highlight=False,
                markup=False,
            )


PARTS = ("subject", "txt", "html", "all")


@templates_app.command("preview")
def templates_preview(
    campaign: Annotated[str, typer.Argument(help="Campaign key, e.g. educate.")],
    step: Annotated[str, typer.Argument(help="Step key, e.g. day-1.")],
    channel: Annotated[str, typer.Option(help="email, whatsapp or sms.")] = "email",
    lead: Annotated[
        int | None, typer.Option(help="Render for this lead id (default: a sample).")
    ] = None,
    part: Annotated[
        str, typer.Option(help="For email: subject, txt, html, or all (the three, labelled).")
    ] = "txt",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the part to this file, byte for byte.")
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant",
            help="An A/B variant of the step (default: with --lead, the lead's own; else none).",
        ),
    ] = None,
) -> None:
    """Print a rendered message: one part exactly as it is sent (or, with --out, write
    it to a file), or all parts labelled. An SMS is shown as a lead's first SMS (with the
    sender and the opt-out line), its segment counts on stderr.

    Example: leadops templates preview offer day-10 --lead 3 --part html --out day-10.html
    """
    if part not in PARTS:
        raise CliError(f"--part {part!r} is not one of {', '.join(PARTS)}")
    if channel not in ("email", "whatsapp", "sms"):
        raise CliError(f"--channel {channel!r} is not one of email, whatsapp, sms")
    if channel != "email" and part not in ("txt", "all"):
        raise CliError(f"a {channel} message has only a text part, not --part {part}")
    if out is not None and part == "all":
        raise CliError("--out writes one part: use --part subject, txt or html")
    parts, notes = _rendered_parts(campaign, step, channel, lead, variant)
    if out is not None:
        data = parts[part].encode("utf-8")
        out.write_bytes(data)
        err.print(f"wrote {len(data)} bytes to {out}", highlight=False, markup=False)
    elif part == "all":
        for name, text in parts.items():
            sys.stdout.write(f"--- {name} ---\n{_line_ended(text)}")
    else:
        sys.stdout.write(_line_ended(parts[part]))
    sys.stdout.flush()
    for note in notes:
        err.print(note, highlight=False, markup=False, soft_wrap=True)


def _segment_notes(body: str, sender: str, limit: int) -> list[str]:
    """What the SMS costs as a lead's first SMS and as a later one, and a warning above
    `limit` segments."""
    first, later = sms_segments(first_sms(body, sender)), sms_segments(body)
    notes = [f"first SMS to a lead: {first}; later SMS: {later}"]
    if first.segments > limit:
        notes.append(
            f"warning: {first.segments} segments is above LEADOPS_SMS_MAX_SEGMENTS={limit}; "
            "each segment is billed as one message"
        )
    return notes


def _line_ended(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _rendered_parts(
    campaign: str, step: str, channel: str, lead: int | None, variant: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """The message's parts by name (subject, txt and html for email, txt for WhatsApp and
    SMS: an SMS as the lead's first), and notes for stderr (an SMS's segments)."""
    from leadops.delivery.compose import (
        SAMPLE_LEAD,
        SAMPLE_UNSUBSCRIBE,
        template_context,
        unsubscribe_url,
    )
    from leadops.delivery.render import RenderError
    from leadops.nurture.experiments import variant_for
    from leadops.views.leads import lead_template_context

    runtime = _build(_settings())
    settings, campaigns = runtime.settings, runtime.campaigns
    if campaign not in campaigns:
        raise CliError(f"unknown campaign {campaign!r} (known: {', '.join(sorted(campaigns))})")
    sample, unsubscribe = SAMPLE_LEAD, SAMPLE_UNSUBSCRIBE
    if lead is not None:
        found = lead_template_context(runtime.engine, lead)
        if found is None:
            raise CliError(f"no lead with id {lead}")
        sample, unsubscribe = found, unsubscribe_url(settings, lead)
    try:
        found_step = campaigns[campaign].step(step)
        if variant is None and lead is not None:
            variant = variant_for(campaign, found_step, lead)
        found_step.variant(variant)
        channels = found_step.channels
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from exc
    if channel not in channels:
        raise CliError(
            f"step {step} of {campaign} has no {channel} message "
            f"(its channels: {', '.join(channels)})"
        )
    context = template_context(
        lead=sample,
        campaign=campaigns[campaign],
        step_key=step,
        settings=settings,
        unsubscribe=unsubscribe,
        channel=channel,
        variant=variant,
    )
    renderer = runtime.renderer
    try:
        if channel == "sms":
            body = renderer.text(channel, campaign, step, context)
            sender = settings.resolved_sms_sender
            notes = _segment_notes(body, sender, settings.sms_max_segments)
            return {"txt": first_sms(body, sender)}, notes
        if channel == "whatsapp":
            return {"txt": renderer.whatsapp(campaign, step, context, variant)}, []
        email = renderer.email(campaign, step, context, variant)
    except RenderError as exc:
        raise CliError(str(exc)) from exc
    return {"subject": email.subject, "txt": email.text, "html": email.html}, []
