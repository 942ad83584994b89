"""The FastAPI app served by `leadops serve`.

Each concern lives in its own router module under leadops/web/ and is included here.
Routers reach settings, the database, the clock, the config and the channels through the
app's one runtime (`leadops.runtime.Runtime`, see `leadops.web.deps.state_of`), so tests
build an app with their own settings and a simulated clock.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import text

from leadops.core.clock import Clock
from leadops.core.settings import Settings, get_settings
from leadops.runtime import Runtime, build_runtime
from leadops.web import escalations, forms, unsubscribe, webhooks
from leadops.web.deps import count_refusal, state_of
from leadops.web.guard import ContentLengthGuard
from leadops.web.handoff import OnEvent

# The webhook_rejections source of each path prefix (the most specific first).
SOURCES = (
    ("/webhooks/sendgrid/inbound", "sendgrid_inbound"),
    ("/webhooks/sendgrid", "sendgrid"),
    ("/webhooks/twilio/status", "twilio_status"),
    ("/webhooks/twilio/inbound", "twilio_inbound"),
    ("/events/site", "site"),
    ("/forms/confirm", "form_confirm"),
    ("/forms/", "form"),
    ("/u/", "unsubscribe"),
    ("/escalations/", "escalation_ack"),
)


def source_of(path: str) -> str:
    """The webhook_rejections source a request path counts under."""
    return next((source for prefix, source in SOURCES if path.startswith(prefix)), "other")


def create_app(
    settings: Settings | None = None,
    engine: Any = None,
    clock: Clock | None = None,
    *,
    runtime: Runtime | None = None,
    on_event: OnEvent | None = None,
) -> FastAPI:
    """Build the app on `runtime`, or on one built from `settings`, `engine` and `clock`.
    Without arguments it uses the process settings and the system clock. `on_event` is
    called after a possible hand-raise is stored (the fast path, leadops.web.handoff)."""
    if runtime is None:
        runtime = build_runtime(settings or get_settings(), engine=engine, clock=clock)
    _ = runtime.engine  # fail now, with a clear message, if the database is not ready
    state = runtime
    settings = runtime.settings
    app = FastAPI(title="leadops", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.leadops = state
    app.state.on_event = on_event

    async def count(path: str, reason: str) -> None:
        await count_refusal(state, source_of(path), reason)

    # Emails come with attachments: Inbound Parse alone may send more than the other routes.
    allowances = {"/webhooks/sendgrid/inbound": settings.inbound_email_max_bytes}
    app.add_middleware(
        ContentLengthGuard,
        limit=settings.webhook_max_body_bytes,
        count=count,
        allowances=allowances,
    )
    app.include_router(forms.router)
    app.include_router(webhooks.router)
    app.include_router(unsubscribe.router)

    @app.get("/healthz")
    def healthz(request: Request) -> dict[str, str]:
        """Liveness and database reachability."""
        with state_of(request).engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    app.include_router(escalations.router)
    return app
