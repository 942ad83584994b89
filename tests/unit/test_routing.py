"""Routing rules, eligibility, fairness and working-time arithmetic (pure, no database)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadops.core.configfile import ConfigError
from leadops.sales.routing import (
    LeadProfile,
    Loads,
    RoutingConfig,
    add_working_minutes,
    in_working_hours,
    load_routing,
    route,
)
from tests.conftest import ROOT

TUESDAY_1400 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # 15:00 in Berlin, 08:00 in Chicago
NOBODY = Loads(open={}, recent={})


def rep(key: str, **values: Any) -> dict[str, Any]:
    return {"key": key, "name": key.title(), "email": f"{key}@northwind.example", **values}


def config(*reps: dict[str, Any], **values: Any) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "manager": {"name": "Manager", "email": "manager@northwind.example"},
            "fallback_queue": {"name": "Queue", "email": "queue@northwind.example"},
            "reps": list(reps),
            **values,
        }
    )


def lead(**values: Any) -> LeadProfile:
    base: dict[str, Any] = {
        "account_domain": None,
        "country": None,
        "industry": None,
        "language": "en",
    }
    return LeadProfile(**(base | values))


def test_shipped_routing_file_loads() -> None:
    routing = load_routing(ROOT / "config" / "routing.yaml")
    assert routing.rules[0] == "account_owner" and routing.rules[-1] == "round_robin"
    assert "NO" in routing.countries_of(routing.rep("sofia"))


def test_account_owner_wins_over_territory() -> None:
    routing = config(rep("ana", territories=["GB"]), rep("ben"))
    decision = route(
        routing,
        lead(account_domain="acme.example", country="GB"),
        now=TUESDAY_1400,
        loads=NOBODY,
        owner="ben",
    )
    assert decision.rep is not None and decision.rep.key == "ben"
    assert decision.rule == "account_owner"


def test_named_account_in_config_is_the_owner() -> None:
    routing = config(rep("ana"), rep("ben"), accounts={"Acme.example": "ben"})
    decision = route(routing, lead(account_domain="acme.example"), now=TUESDAY_1400, loads=NOBODY)
    assert decision.rep is not None and decision.rep.key == "ben"
    learned = route(
        routing, lead(account_domain="acme.example"), now=TUESDAY_1400, loads=NOBODY, owner="ana"
    )
    assert learned.rep is not None and learned.rep.key == "ben"  # the file wins


def test_unavailable_owner_falls_through_to_the_next_rules() -> None:
    routing = config(rep("ana", territories=["GB"]), rep("ben", active=False))
    decision = route(
        routing,
        lead(account_domain="acme.example", country="GB"),
        now=TUESDAY_1400,
        loads=NOBODY,
        owner="ben",
    )
    assert decision.rep is not None and decision.rep.key == "ana"
    assert decision.rule == "territory"
    assert "owner ben unavailable" in decision.detail


def test_territory_by_country_and_by_region() -> None:
    routing = config(
        rep("ana", territories=["GB"]),
        rep("ben", territories=["dach"]),
        rep("cem"),
        regions={"dach": ["de", "AT", "CH"]},
    )
    for country, expected in (("GB", "ana"), ("AT", "ben"), ("FR", None)):
        decision = route(routing, lead(country=country), now=TUESDAY_1400, loads=NOBODY)
        assert decision.rep is not None
        if expected:
            assert (decision.rep.key, decision.rule) == (expected, "territory")
        else:
            assert decision.rule == "round_robin"


def test_industry_narrows_within_the_territory() -> None:
    routing = config(
        rep("ana", territories=["US"], industries=["Retail"]),
        rep("ben", territories=["US"], industries=["software"]),
        rep("cem", industries=["software"]),
    )
    decision = route(
        routing, lead(country="US", industry="Software"), now=TUESDAY_1400, loads=NOBODY
    )
    assert decision.rep is not None and decision.rep.key == "ben"
    assert decision.rule == "territory+industry"


def test_language_match() -> None:
    routing = config(rep("ana", languages=["en"]), rep("ben", languages=["en", "es"]))
    decision = route(routing, lead(country="MX", language="es"), now=TUESDAY_1400, loads=NOBODY)
    assert decision.rep is not None and decision.rep.key == "ben"
    assert decision.rule == "language"


def test_rule_order_comes_from_the_file() -> None:
    reps = (rep("ana", territories=["ES"]), rep("ben", languages=["es"]))
    profile = lead(country="ES", language="es")
    by_territory = route(config(*reps), profile, now=TUESDAY_1400, loads=NOBODY)
    language_only = config(*reps, rules=["language", "round_robin"])
    by_language = route(language_only, profile, now=TUESDAY_1400, loads=NOBODY)
    assert by_territory.rep is not None and by_territory.rep.key == "ana"
    assert by_language.rep is not None and by_language.rep.key == "ben"


def test_capacity_excludes_a_full_rep() -> None:
    routing = config(rep("ana", territories=["GB"], capacity=2), rep("ben"))
    full = Loads(open={"ana": 2}, recent={})
    decision = route(routing, lead(country="GB"), now=TUESDAY_1400, loads=full)
    assert decision.rep is not None and decision.rep.key == "ben"
    below = Loads(open={"ana": 1}, recent={})
    decision = route(routing, lead(country="GB"), now=TUESDAY_1400, loads=below)
    assert decision.rep is not None and decision.rep.key == "ana"


def test_working_hours_exclude_reps_outside_their_own_hours() -> None:
    routing = config(
        rep("ana", territories=["US"], timezone="America/Los_Angeles"),  # 06:00 there
        rep("ben", timezone="Europe/Berlin"),  # 15:00 there
        rep(
            "cem",
            timezone="Europe/Berlin",
            hours={"start": "09:00", "end": "17:00", "days": ["sat", "sun"]},
        ),
    )
    decision = route(routing, lead(country="US"), now=TUESDAY_1400, loads=NOBODY)
    assert decision.rep is not None and decision.rep.key == "ben"
    assert not in_working_hours(routing.rep("ana"), TUESDAY_1400)
    assert in_working_hours(routing.rep("ana"), TUESDAY_1400 + timedelta(hours=4))
    assert not in_working_hours(routing.rep("cem"), TUESDAY_1400)


def test_inactive_and_excluded_reps_are_never_chosen_and_nobody_means_fallback() -> None:
    routing = config(rep("ana", active=False), rep("ben"))
    decision = route(routing, lead(), now=TUESDAY_1400, loads=NOBODY, exclude={"ben"})
    assert decision.rep is None and decision.rule == "fallback"
    assert "ana: inactive" in decision.detail and "ben: already tried" in decision.detail


def test_weighted_round_robin_is_fair_over_1000_escalations() -> None:
    routing = config(
        rep("ana", weight=1), rep("ben", weight=2), rep("cem", weight=3), rep("dan", weight=4)
    )
    counts: Counter[str] = Counter()
    for _ in range(1000):
        decision = route(routing, lead(), now=TUESDAY_1400, loads=Loads(open={}, recent=counts))
        assert decision.rep is not None and decision.rule == "round_robin"
        counts[decision.rep.key] += 1
    for key, weight in (("ana", 1), ("ben", 2), ("cem", 3), ("dan", 4)):
        assert abs(counts[key] - 100 * weight) <= 2, counts


def test_equal_weights_rotate() -> None:
    routing = config(rep("ana"), rep("ben"), rep("cem"))
    counts: Counter[str] = Counter()
    order = []
    for _ in range(6):
        decision = route(routing, lead(), now=TUESDAY_1400, loads=Loads(open={}, recent=counts))
        assert decision.rep is not None
        counts[decision.rep.key] += 1
        order.append(decision.rep.key)
    assert order == ["ana", "ben", "cem", "ana", "ben", "cem"]


def test_working_minutes_carry_over_the_evening_and_the_weekend() -> None:
    routing = config(rep("ana", timezone="Europe/London", hours={"start": "09:00", "end": "17:00"}))
    ana = routing.rep("ana")
    inside = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert add_working_minutes(ana, inside, 15) == inside + timedelta(minutes=15)
    friday_late = datetime(2026, 12, 4, 16, 50, tzinfo=UTC)
    assert add_working_minutes(ana, friday_late, 15) == datetime(2026, 12, 7, 9, 5, tzinfo=UTC)
    saturday = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert add_working_minutes(ana, saturday, 15) == datetime(2026, 12, 7, 9, 15, tzinfo=UTC)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


GOOD = """\
manager: {name: M, email: m@x.example}
fallback_queue: {name: Q, email: q@x.example}
reps:
  - key: ana
    name: Ana
    email: ana@x.example
"""


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        ("    timezone: Mars/Base\n", 7, "unknown IANA timezone"),
        ("    notify: [email, whatsapp]\n", 7, "needs whatsapp"),
        ("    slack_webhook_url: https://hooks.slack.com/services/T/B/X\n", 7, "env:VARIABLE"),
        ("    territories: [GB, NO]\n", 7, "territories.1"),
        ("    weight: 0\n", 7, "greater than or equal to 1"),
        ("    colour: blue\n", 7, "Extra inputs"),
    ],
)
def test_config_errors_name_file_and_line(
    tmp_path: Path, change: str, line: int, words: str
) -> None:
    path = write(tmp_path, GOOD + change)
    with pytest.raises(ConfigError) as caught:
        load_routing(path)
    assert caught.value.line == line, str(caught.value)
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}:")


def test_config_errors_for_rules_and_accounts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="last rule must be round_robin"):
        load_routing(write(tmp_path, GOOD + "rules: [territory]\n"))
    with pytest.raises(ConfigError, match="unknown rep 'zed'"):
        load_routing(write(tmp_path, GOOD + "accounts: {acme.example: zed}\n"))
    with pytest.raises(ConfigError, match="used twice"):
        load_routing(write(tmp_path, GOOD + "  - {key: ana, name: A2, email: a2@x.example}\n"))


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        ("    booking_url: cal.example/ana\n", 7, "not an http(s) link"),
        ("intro:\n  triggers:\n    demo_requested: [sms]\n", 9, "'email', 'whatsapp' or"),
        ("intro:\n  triggers:\n    demo_requested: []\n", 9, "at least 1 item"),
        ("intro:\n  triggers:\n    Demo Requested: [email]\n", 9, "should match pattern"),
    ],
)
def test_intro_and_booking_errors_name_file_and_line(
    tmp_path: Path, change: str, line: int, words: str
) -> None:
    path = write(tmp_path, GOOD + change)
    with pytest.raises(ConfigError) as caught:
        load_routing(path)
    assert caught.value.line == line, str(caught.value)
    assert words in str(caught.value)


def test_the_intro_goes_to_hand_raises_by_default_on_the_channel_they_came_in_on() -> None:
    default = config(rep("ana"))
    assert default.intro.channels("demo_requested") == ["email"]
    assert default.intro.channels("reply_intent") == ["whatsapp", "email"]
    for trigger in ("sql_threshold", "imported_sql", "retry_due"):
        assert default.intro.channels(trigger) == []
    chosen = config(rep("ana"), intro={"triggers": {"sql_threshold": ["whatsapp", "email"]}})
    assert chosen.intro.channels("sql_threshold") == ["whatsapp", "email"]
    assert chosen.intro.channels("demo_requested") == []  # only the listed triggers
    assert config(rep("ana"), intro={"triggers": {}}).intro.channels("demo_requested") == []
    shipped = load_routing(ROOT / "config" / "routing.yaml")
    assert shipped.rep("james").booking_url and shipped.fallback_queue.booking_url
    assert shipped.intro.channels("reply_intent") == ["whatsapp", "email"]
    assert shipped.intro.channels("imported_sql") == []


def test_band_and_property_rules_narrow_to_the_reps_who_take_such_leads() -> None:
    routing = config(
        rep("ana"),
        rep("ben", bands=["hot"]),
        rep("cy", properties={"budget": ["approved"]}),
        rules=["band", "properties", "round_robin"],
    )

    def chosen(**values: Any) -> tuple[str | None, str]:
        decision = route(routing, lead(**values), now=TUESDAY_1400, loads=NOBODY)
        return (decision.rep.key if decision.rep else None, decision.rule)

    assert chosen(band="hot") == ("ben", "band")
    assert chosen(band="cold", properties={"budget": "Approved"}) == ("cy", "properties")
    assert chosen(band="cold") == ("ana", "round_robin")  # nobody matches: both passed over
    with pytest.raises(ValueError, match="grades"):
        config(rep("ana", grades=["E5"]))
