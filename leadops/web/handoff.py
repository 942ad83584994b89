"""The fast path's kick from the web app: after an event that may raise a hand is stored,
call the `on_event` callable `create_app` was given (`leadops serve` gives it one, see
leadops.ops.handoff; without it the every-minute pass takes the event)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastapi import Request

from leadops.providers import inbound

OnEvent = Callable[[], None]  # must not block: it only asks for a pass
# Delivery reports and unsubscribes raise no hand: the every-minute pass applies them.
NO_HAND_RAISE = frozenset({inbound.SENDGRID, inbound.TWILIO_STATUS, inbound.UNSUBSCRIBE})


def kick(request: Request, records: Sequence[inbound.InboxRecord] = ()) -> None:
    """Ask for a fast pass, unless every record stored is one that raises no hand."""
    on_event: OnEvent | None = getattr(request.app.state, "on_event", None)
    if on_event is None:
        return
    if records and all(record.source in NO_HAND_RAISE for record in records):
        return
    on_event()
