"""The FastAPI app served by `leadops serve`.

Each concern lives in its own router module under leadops/web/ and is included here.
Routers reach settings, the database and the clock through `request.app.state`
(see `AppState`), so tests build an app with their own settings and a simulated clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import text

from leadops.clock import Clock, SystemClock
from leadops.settings import Settings, get_settings


@dataclass
class AppState:
    """What every route needs: settings, the database engine and the clock."""

    settings: Settings
    engine: Any
    clock: Clock


def state_of(request: Request) -> AppState:
    """The AppState of the app serving this request."""
    state: AppState = request.app.state.leadops
    return state


def create_app(
    settings: Settings | None = None, engine: Any = None, clock: Clock | None = None
) -> FastAPI:
    """Build the app. Without arguments it uses the process settings and the system clock."""
    from leadops.db import ensure_ready, make_engine

    settings = settings or get_settings()
    if engine is None:
        engine = make_engine(settings.resolved_database_url)
        ensure_ready(engine)
    app = FastAPI(title="leadops", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.leadops = AppState(settings=settings, engine=engine, clock=clock or SystemClock())
    from leadops.web.forms import router as forms_router

    app.include_router(forms_router)

    from leadops.web import unsubscribe, webhooks

    app.include_router(webhooks.router)
    app.include_router(unsubscribe.router)

    @app.get("/healthz")
    def healthz(request: Request) -> dict[str, str]:
        """Liveness and database reachability."""
        with state_of(request).engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    from leadops.web import escalations

    app.include_router(escalations.router)
    return app
