"""Unit tests for UTM tags on campaign links (leadops.delivery.utm and the compose step)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from leadops.core.configfile import ConfigError
from leadops.core.settings import Settings
from leadops.delivery.campaigns import (
    CALENDAR_KEYS,
    OPTIONAL_CAMPAIGN_KEYS,
    OPTIONAL_STEP_KEYS,
    load_campaign,
)
from leadops.delivery.compose import SAMPLE_LEAD, template_context
from leadops.delivery.render import Renderer
from leadops.delivery.utm import UtmConfig, tag_url, tagged_links
from tests.conftest import ROOT

TAGS = {"utm_source": "leadops", "utm_medium": "email"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x", "https://a.example/x?utm_source=leadops&utm_medium=email"),
        (
            "https://a.example/x?ref=7&b=",
            "https://a.example/x?ref=7&b=&utm_source=leadops&utm_medium=email",
        ),
        (
            "https://a.example/x?utm_source=partner#top",
            "https://a.example/x?utm_source=partner&utm_medium=email#top",
        ),
    ],
)
def test_tag_url_keeps_the_query_string_and_its_own_utm_values(url: str, expected: str) -> None:
    assert tag_url(url, TAGS) == expected


LINKS = {
    "guide": "https://site.example/guide",
    "mail": "mailto:hello@site.example",
    "confirm": "https://leads.example.com/c/TOKEN",
    "prefs": "https://site.example/preferences",
}


def links(utm: UtmConfig, channel: str = "whatsapp") -> dict[str, str]:
    return tagged_links(
        LINKS,
        utm,
        campaign="educate",
        step="day-10",
        channel=channel,
        own_url="https://leads.example.com/",
    )


def test_campaign_links_get_source_medium_campaign_and_step() -> None:
    tagged = links(UtmConfig(skip=("prefs",)))
    assert tagged["guide"] == (
        "https://site.example/guide?utm_source=leadops&utm_medium=whatsapp"
        "&utm_campaign=educate&utm_content=day-10"
    )
    # not http(s), our own public URL (confirmation, unsubscribe, ack), skipped by name
    for name in ("mail", "confirm", "prefs"):
        assert tagged[name] == LINKS[name]


def test_overrides_and_off() -> None:
    utm = UtmConfig(source="newsletter", medium="crm", campaign="q4-push", content="cta")
    assert links(utm)["guide"].endswith(
        "?utm_source=newsletter&utm_medium=crm&utm_campaign=q4-push&utm_content=cta"
    )
    assert links(UtmConfig(enabled=False)) == LINKS


CAMPAIGN = """\
name: X
links:
  guide_url: https://site.example/guide?lang=en
steps:
  - key: day-1
    day: 1
    name: First
    channels: [email]
"""


def test_campaign_file_utm_block_is_validated_and_keeps_old_checksums(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(CAMPAIGN)
    plain = load_campaign(path)
    assert plain.utm == UtmConfig()
    without_field = plain.model_dump(mode="json")
    for key in ("utm", "sunset", *CALENDAR_KEYS, *OPTIONAL_CAMPAIGN_KEYS):
        del without_field[key]  # unset blocks are left out of the checksum
    del without_field["holdout"]  # and so are experiments, unset
    for step in without_field["steps"]:
        del step["variants"], step["metric"]
        for key in OPTIONAL_STEP_KEYS:
            del step[key]
    assert (
        plain.checksum()
        == hashlib.sha256(json.dumps(without_field, sort_keys=True).encode()).hexdigest()
    )
    path.write_text(CAMPAIGN + "utm:\n  source: newsletter\n")
    assert load_campaign(path).checksum() != plain.checksum()
    path.write_text(CAMPAIGN + "utm:\n  sorce: newsletter\n")
    with pytest.raises(ConfigError, match="sorce"):
        load_campaign(path)


def test_rendered_messages_carry_tagged_links_but_not_a_tagged_unsubscribe() -> None:
    campaign = load_campaign(ROOT / "config" / "campaigns" / "educate.yaml")
    settings = Settings()
    unsubscribe = f"{settings.public_url}/u/TOKEN"
    renderer = Renderer(ROOT / "templates")
    email = renderer.email(
        "educate",
        "day-1",
        template_context(
            lead=SAMPLE_LEAD,
            campaign=campaign,
            step_key="day-1",
            settings=settings,
            unsubscribe=unsubscribe,
            channel="email",
        ),
    )
    guide = campaign.links["guide_url"]
    assert f"{guide}?utm_source=leadops&amp;utm_medium=email&amp;utm_campaign=educate" in email.html
    assert f"{guide}?utm_source=leadops&utm_medium=email&utm_campaign=educate" in email.text
    assert unsubscribe in email.text and f"{unsubscribe}?" not in email.text
    body = renderer.whatsapp(
        "educate",
        "day-1",
        template_context(
            lead=SAMPLE_LEAD,
            campaign=campaign,
            step_key="day-1",
            settings=settings,
            unsubscribe=unsubscribe,
            channel="whatsapp",
        ),
    )
    assert "utm_medium=whatsapp&utm_campaign=educate&utm_content=day-1" in body
