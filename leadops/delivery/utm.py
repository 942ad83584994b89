"""UTM tags on a campaign's links, so web analytics can attribute the visits they bring.

A campaign's `links:` are what its templates link to (`{{ links.guide_url }}`); each is
tagged when a message is rendered: `utm_source` (default "leadops"), `utm_medium` (the
channel), `utm_campaign` (the campaign key) and `utm_content` (the step key). A link's own
query string is kept, and a UTM parameter it already has wins. Never tagged: links that
are not http(s), links to our own public URL (unsubscribe, acknowledgement and
confirmation links live there) and the links named in `skip`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_SOURCE = "leadops"


class UtmConfig(BaseModel):
    """The `utm:` block of a campaign file; every key is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True, description="false: leave the campaign's links as they are."
    )
    source: str = Field(default=DEFAULT_SOURCE, min_length=1, description="utm_source.")
    medium: str | None = Field(default=None, description="utm_medium (default: the channel).")
    campaign: str | None = Field(
        default=None, description="utm_campaign (default: the campaign key)."
    )
    content: str | None = Field(default=None, description="utm_content (default: the step key).")
    skip: tuple[str, ...] = Field(
        default=(), description="Names of links (keys of `links:`) never to tag."
    )


def utm_params(utm: UtmConfig, *, campaign: str, step: str, channel: str) -> dict[str, str]:
    """The four parameters for one message."""
    return {
        "utm_source": utm.source,
        "utm_medium": utm.medium or channel,
        "utm_campaign": utm.campaign or campaign,
        "utm_content": utm.content or step,
    }


def tag_url(url: str, params: Mapping[str, str]) -> str:
    """`url` with `params` added to its query string; its own parameters (a UTM one it
    already has included) and its fragment are kept."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    query += [(name, value) for name, value in params.items() if name not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _own(url: str, own_url: str) -> bool:
    own = own_url.rstrip("/")
    return bool(own) and (url == own or url.startswith(own + "/") or url.startswith(own + "?"))


def tagged_links(
    links: Mapping[str, str],
    utm: UtmConfig,
    *,
    campaign: str,
    step: str,
    channel: str,
    own_url: str,
) -> dict[str, str]:
    """A campaign's links as one message of `step` on `channel` shows them (worked out once
    per campaign links, step and channel: every message of a step shows the same ones)."""
    return dict(
        _tagged(
            tuple(links.items()),
            utm,
            campaign=campaign,
            step=step,
            channel=channel,
            own_url=own_url,
        )
    )


@lru_cache(maxsize=4096)
def _tagged(
    links: tuple[tuple[str, str], ...],
    utm: UtmConfig,
    *,
    campaign: str,
    step: str,
    channel: str,
    own_url: str,
) -> dict[str, str]:
    if not utm.enabled:
        return dict(links)
    params = utm_params(utm, campaign=campaign, step=step, channel=channel)
    return {
        name: url
        if name in utm.skip
        or urlsplit(url).scheme.lower() not in ("http", "https")
        or _own(url, own_url)
        else tag_url(url, params)
        for name, url in links
    }
