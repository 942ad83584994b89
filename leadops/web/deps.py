"""What every router depends on: the app's state (settings, engine, clock), and counting and
answering a refused request."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from leadops.core.clock import Clock
from leadops.core.settings import Settings
from leadops.engagement import inbox
from leadops.web.guard import Refused

log = logging.getLogger("leadops.webhooks")


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


async def count_refusal(state: AppState, source: str, reason: str) -> None:
    """Count one refused request in webhook_rejections."""
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
