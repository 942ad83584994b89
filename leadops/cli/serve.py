"""`leadops serve`: the web app under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from leadops.cli.common import (
    _engine,
    _settings,
)

commands = typer.Typer()


@commands.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the webhooks app (uvicorn), with the connection limits and timeouts of
    leadops.web.server. Example: leadops serve --port 8000"""
    import uvicorn

    from leadops.web.server import uvicorn_options

    _engine(_settings())  # fail now, with a clear message, if the database is not ready
    uvicorn.run(
        "leadops.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=True,
        **uvicorn_options(),
    )
