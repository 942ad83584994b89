"""What every router depends on: the app's state (the one runtime: settings, engine, clock,
config, channels), and counting and answering a refused request."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from leadops.engagement import inbox
from leadops.runtime import Runtime
from leadops.web.guard import Refused

log = logging.getLogger("leadops.webhooks")


def state_of(request: Request) -> Runtime:
    """The runtime of the app serving this request."""
    state: Runtime = request.app.state.leadops
    return state


async def count_refusal(state: Runtime, source: str, reason: str) -> None:
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
