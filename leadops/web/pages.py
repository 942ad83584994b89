"""The plain HTML pages the web-form and unsubscribe routes answer with: a title and a body,
in each route's own look (its markup quotes, style and headers, kept as they were)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from fastapi.responses import HTMLResponse


@dataclass(frozen=True)
class Look:
    quote: str
    body_style: str
    headers: dict[str, str] | None = None


FORM_LOOK = Look(
    quote='"',
    body_style="font-family:sans-serif;max-width:36em;margin:3em auto",
    headers={"Cache-Control": "no-store"},
)
UNSUBSCRIBE_LOOK = Look(
    quote="'", body_style="font-family:sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem"
)


def page(title: str, body: str, status: int = 200, *, look: Look) -> HTMLResponse:
    """A page titled `title` (escaped here) around `body` (HTML, escaped by the caller)."""
    q = look.quote
    document = (
        f"<!doctype html><html lang={q}en{q}><head><meta charset={q}utf-8{q}>"
        f"<meta name={q}viewport{q} content={q}width=device-width, initial-scale=1{q}>"
        f"<meta name={q}robots{q} content={q}noindex{q}><title>{escape(title)}</title></head>"
        f"<body style={q}{look.body_style}{q}>"
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )
    headers = dict(look.headers) if look.headers is not None else None
    return HTMLResponse(document, status_code=status, headers=headers)
