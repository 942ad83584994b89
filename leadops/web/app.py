"""The FastAPI app served by `leadops serve`.

Each concern lives in its own router module under leadops/web/ and is included here.
Routers reach settings, the database and the clock through `request.app.state`
(see `AppState`), so tests build an app with their own settings and a simulated clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from leadops.core.clock import Clock, SystemClock
from leadops.core.settings import Settings, get_settings
from leadops.web.guard import ContentLengthGuard, Refused

log = logging.getLogger("leadops.webhooks")

# The webhook_rejections source of each path prefix (the most specific first).
SOURCES = (
    ("/webhooks/sendgrid", "sendgrid"),
    ("/webhooks/twilio/status", "twilio_status"),
    ("/webhooks/twilio/inbound", "twilio_inbound"),
    ("/events/site", "site"),
    ("/forms/confirm", "form_confirm"),
    ("/forms/", "form"),
    ("/u/", "unsubscribe"),
    ("/escalations/", "escalation_ack"),
)


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


def source_of(path: str) -> str:
    """The webhook_rejections source a request path counts under."""
    return next((source for prefix, source in SOURCES if path.startswith(prefix)), "other")


async def count_refusal(state: AppState, source: str, reason: str) -> None:
    """Count one refused request in webhook_rejections."""
    from leadops.engagement import inbox

    await run_in_threadpool(inbox.count_rejection, state.engine, source, reason, state.clock.now())


async def refuse(request: Request, source: str, refused: Refused) -> JSONResponse:
    """Count the refusal and answer it with its status and message."""
    await count_refusal(state_of(request), source, refused.reason)
    log.warning("%s request refused (%s): %s", source, refused.reason, refused.message)
    # Closing drops whatever of the refused body is still arriving.
    return JSONResponse(
        {"error": refused.message},
        status_code=refused.status,
        headers={"Connection": "close"},
    )


def create_app(
    settings: Settings | None = None, engine: Any = None, clock: Clock | None = None
) -> FastAPI:
    """Build the app. Without arguments it uses the process settings and the system clock."""
    from leadops.core.db import ensure_ready, make_engine

    settings = settings or get_settings()
    if engine is None:
        engine = make_engine(settings.resolved_database_url)
        ensure_ready(engine)
    app = FastAPI(title="leadops", docs_url=None, redoc_url=None, openapi_url=None)
    state = AppState(settings=settings, engine=engine, clock=clock or SystemClock())
    app.state.leadops = state

    async def count(path: str, reason: str) -> None:
        await count_refusal(state, source_of(path), reason)

    app.add_middleware(ContentLengthGuard, limit=settings.webhook_max_body_bytes, count=count)
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
