"""`leadops serve`: the web app under uvicorn; `leadops handoff-worker`: the fast path's
Prefect task worker."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from leadops.cli.common import CliError, _engine, _settings
from leadops.core.settings import Settings
from leadops.ops.handoff import Kicker, Mode, fast_path_mode, run_fast_pass

if TYPE_CHECKING:
    from fastapi import FastAPI

commands = typer.Typer()

# The serve process talks to Prefect only to submit fast hand-offs: a server that does
# not answer holds the (coalesced) submissions for this long at most, not Prefect's 60 s.
SUBMIT_TIMEOUT_SECONDS = "10"


def _mode(settings: Settings) -> Mode:
    mode = fast_path_mode(settings, os.environ)
    if mode == "prefect" and not os.environ.get("PREFECT_API_URL"):
        raise CliError(
            "LEADOPS_FAST_PATH=prefect needs PREFECT_API_URL (the server the "
            "`leadops handoff-worker` task worker listens to)"
        )
    return mode


def fast_path_kicker() -> Kicker | None:
    """The fast path of this process (LEADOPS_FAST_PATH), None when it is off."""
    settings = _settings()
    mode = _mode(settings)
    if mode == "off":
        return None
    if mode == "thread":
        return Kicker(lambda: run_fast_pass(settings), name="fast pass")
    os.environ.setdefault("PREFECT_API_REQUEST_TIMEOUT", SUBMIT_TIMEOUT_SECONDS)
    from flows.handoff import submit_handoff

    return Kicker(submit_handoff, name="hand-off submission to Prefect")


def app_factory() -> FastAPI:
    """The app `leadops serve` serves (uvicorn calls it in each worker process), with the
    fast path's kick."""
    from leadops.web.app import create_app

    kicker = fast_path_kicker()
    return create_app(on_event=kicker.kick if kicker else None)


@commands.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the webhooks app (uvicorn), with the connection limits and timeouts of
    leadops.web.server; a hand-raise starts the fast path (LEADOPS_FAST_PATH).
    Example: leadops serve --port 8000"""
    import uvicorn

    from leadops.web.server import uvicorn_options

    settings = _settings()
    _engine(settings)  # fail now, with a clear message, if the database is not ready
    _mode(settings)
    uvicorn.run(
        "leadops.cli.serve:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=True,
        **uvicorn_options(),
    )


@commands.command("handoff-worker")
def handoff_worker() -> None:
    """Run the fast path's Prefect task worker: it runs each hand-off `leadops serve`
    submits, at once (needs PREFECT_API_URL; stop it with Ctrl-C or SIGTERM).
    Example: PREFECT_API_URL=http://127.0.0.1:4200/api leadops handoff-worker"""
    if not os.environ.get("PREFECT_API_URL"):
        raise CliError(
            "PREFECT_API_URL is not set: the task worker needs a Prefect server "
            "(`prefect server start`, then PREFECT_API_URL=http://127.0.0.1:4200/api)"
        )
    _engine(_settings())  # fail now, with a clear message, if the database is not ready
    # A background task has no flow run to send its log lines to: keep them in the log.
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    from flows.handoff import serve_handoff

    typer.echo("serving the hand-off task; stop with Ctrl-C", err=True)
    serve_handoff()
