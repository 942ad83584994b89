"""HubSpot: one HTTP client (rate limit, retries, timeouts) for intake and the write-back."""

from leadops.providers.hubspot.client import (
    HubSpotClient,
    HubSpotError,
    HubSpotRefused,
    HubSpotUncertain,
    shared_limiter,
)

__all__ = [
    "HubSpotClient",
    "HubSpotError",
    "HubSpotRefused",
    "HubSpotUncertain",
    "shared_limiter",
]
