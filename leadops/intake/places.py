"""Countries and time zones as the tzdata package knows them: country codes and names,
each country's zones, and whether a zone name is known."""

from __future__ import annotations

import importlib.resources
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=1)
def country_zones() -> dict[str, list[str]]:
    """Country code -> IANA zones, from the tzdata package's zone.tab (first = main zone)."""
    text = (importlib.resources.files("tzdata") / "zoneinfo" / "zone.tab").read_text()
    zones: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            zones.setdefault(parts[0], []).append(parts[2])
    return zones


@lru_cache(maxsize=1)
def country_names() -> dict[str, str]:
    """Country code and lower-cased English name -> ISO 3166 alpha-2 code (tzdata's table)."""
    text = (importlib.resources.files("tzdata") / "zoneinfo" / "iso3166.tab").read_text()
    names: dict[str, str] = {}
    for line in text.splitlines():
        if line[:1].isalpha():
            code, name = line.split("\t")[:2]
            names[code] = code
            names[name.lower()] = code
    names.update(
        {
            "uk": "GB",
            "united kingdom": "GB",
            "great britain": "GB",
            "england": "GB",
            "scotland": "GB",
            "wales": "GB",
            "northern ireland": "GB",
            "usa": "US",
            "united states of america": "US",
            "south korea": "KR",
            "republic of korea": "KR",
            "north korea": "KP",
            "czech republic": "CZ",
            "myanmar": "MM",
            "swaziland": "SZ",
            "ivory coast": "CI",
            "holland": "NL",
            "the netherlands": "NL",
            "russian federation": "RU",
            "viet nam": "VN",
        }
    )
    return names


def country_code(value: object) -> str | None:
    """An ISO 3166 alpha-2 code from a code or an English country name; None if unknown."""
    text = " ".join(str(value).split()) if value is not None else ""
    if not text:
        return None
    return country_names().get(text.upper()) or country_names().get(text.lower())


@lru_cache(maxsize=1024)
def is_known_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return "/" in name or name == "UTC"
