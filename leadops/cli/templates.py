"""`leadops templates`: check every template and preview a rendered message."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlmodel import Session

from leadops.cli.common import (
    CliError,
    _engine,
    _settings,
    console,
    err,
)
from leadops.cli.output import Format, emit
from leadops.delivery.render import RenderError

templates_app = typer.Typer(help="Check and preview message templates.", no_args_is_help=True)


def _sample_leads() -> list[dict[str, Any]]:
    full = {
        "first_name": "Amara",
        "last_name": "Nwosu",
        "full_name": "Amara Nwosu",
        "email": "amara.nwosu@harbor-logistics.example",
        "phone": "+447700900123",
        "company": "Harbor Logistics",
        "job_title": "Head of Operations",
        "industry": "logistics",
        "country": "GB",
        "lifecycle_stage": "mql",
        "company_size": 240,
    }
    sparse = {key: None for key in full} | {
        "email": "someone@example.com",
        "lifecycle_stage": "lead",
    }
    hostile = full | {"first_name": "<script>alert(1)</script>", "company": 'Smith & Sons "Ltd"'}
    return [full, sparse, hostile]


@templates_app.command("check")
def templates_check() -> None:
    """Render every campaign step on every channel against sample leads; list each error.

    Example: leadops templates check
    """
    from leadops.delivery.campaigns import load_campaigns
    from leadops.delivery.compose import template_context
    from leadops.delivery.render import Renderer

    settings = _settings()
    campaigns = load_campaigns(settings.config_dir)
    renderer = Renderer(settings.templates_dir)
    errors: list[RenderError] = []
    checked = 0
    for campaign in campaigns.values():
        for step in campaign.steps:
            for channel in step.channels:
                for sample in _sample_leads():
                    context = template_context(
                        lead=sample,
                        campaign=campaign,
                        step_key=step.key,
                        settings=settings,
                        unsubscribe="https://example.invalid/u/sample-token",
                    )
                    checked += 1
                    try:
                        if channel == "email":
                            renderer.email(campaign.key, step.key, context)
                        else:
                            renderer.whatsapp(campaign.key, step.key, context)
                    except RenderError as exc:
                        if all(str(exc) != str(seen) for seen in errors):
                            errors.append(exc)
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
    from leadops.delivery.campaigns import load_campaigns
    from leadops.delivery.compose import lead_context, template_context, unsubscribe_url
    from leadops.delivery.render import Renderer
    from leadops.models import Lead

    settings = _settings()
    campaigns = load_campaigns(settings.config_dir)
    if campaign not in campaigns:
        raise CliError(f"unknown campaign {campaign!r} (known: {', '.join(sorted(campaigns))})")
    sample = _sample_leads()[0]
    unsubscribe = "https://example.invalid/u/sample-token"
    if lead is not None:
        with Session(_engine(settings)) as session:
            row = session.get(Lead, lead)
            if row is None:
                raise CliError(f"no lead with id {lead}")
            sample, unsubscribe = lead_context(row), unsubscribe_url(settings, lead)
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
    renderer = Renderer(settings.templates_dir)
    if channel == "whatsapp":
        console.print(renderer.whatsapp(campaign, step, context), markup=False, highlight=False)
        return
    email = renderer.email(campaign, step, context)
    console.print(f"Subject: {email.subject}\n", markup=False, highlight=False)
    if part in ("txt", "all"):
        console.print(email.text, markup=False, highlight=False)
    if part in ("html", "all"):
        console.print(email.html, markup=False, highlight=False)
