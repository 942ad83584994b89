"""`leadops templates`: check every template and preview a rendered message."""

from __future__ import annotations

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

templates_app = typer.Typer(help="Check and preview message templates.", no_args_is_help=True)


@templates_app.command("check")
def templates_check() -> None:
    """Render every campaign step on every channel against sample leads; list each error.

    Example: leadops templates check
    """
    from leadops.delivery.compose import check_all_templates

    runtime = _build(_settings())
    result = check_all_templates(runtime.settings, runtime.campaigns)
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


@templates_app.command("preview")
def templates_preview(
    campaign: Annotated[str, typer.Argument(help="Campaign key, e.g. educate.")],
    step: Annotated[str, typer.Argument(help="Step key, e.g. day-1.")],
    channel: Annotated[str, typer.Option(help="email or whatsapp.")] = "email",
    lead: Annotated[
        int | None, typer.Option(help="Render for this lead id (default: a sample).")
    ] = None,
    part: Annotated[str, typer.Option(help="For email: txt, html or all.")] = "txt",
) -> None:
    """Print a rendered message. Example: leadops templates preview offer day-10 --lead 3"""
    from leadops.delivery.compose import (
        SAMPLE_LEAD,
        SAMPLE_UNSUBSCRIBE,
        template_context,
        unsubscribe_url,
    )
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
        campaigns[campaign].step(step)
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from exc
    context = template_context(
        lead=sample,
        campaign=campaigns[campaign],
        step_key=step,
        settings=settings,
        unsubscribe=unsubscribe,
    )
    renderer = runtime.renderer
    if channel == "whatsapp":
        console.print(renderer.whatsapp(campaign, step, context), markup=False, highlight=False)
        return
    email = renderer.email(campaign, step, context)
    console.print(f"Subject: {email.subject}\n", markup=False, highlight=False)
    if part in ("txt", "all"):
        console.print(email.text, markup=False, highlight=False)
    if part in ("html", "all"):
        console.print(email.html, markup=False, highlight=False)
