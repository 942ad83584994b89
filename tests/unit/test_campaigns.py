"""Unit tests for campaign and segment file loading (delivery.campaigns, core.configfile)."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadops.core.configfile import ConfigError
from leadops.delivery.campaigns import load_campaign, load_campaigns
from leadops.nurture.segments import load_segments

GOOD = """\
# comment
name: X
cycle_days: 30
steps:
  - key: day-1
    day: 1
    name: First
    channels: [email]
  - key: day-10
    day: 10
    name: Second
    channels: [email, whatsapp]
"""


def write(tmp_path: Path, text: str, name: str = "x") -> Path:
    folder = tmp_path / "campaigns"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_campaign(path)
    return info.value


def test_good_campaign_loads(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    campaigns = load_campaigns(tmp_path)
    assert list(campaigns) == ["x"]
    assert [s.key for s in campaigns["x"].steps] == ["day-1", "day-10"]


def test_unknown_channel(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("channels: [email, whatsapp]", "channels: [email, fax]"))
    err = error_for(path)
    assert err.path == str(path)
    assert err.line == 12
    assert str(path) in str(err) and ":12:" in str(err)
    assert "steps.1.channels.1" in err.reason
    assert "email" in err.reason and "whatsapp" in err.reason


def test_typo_field_is_forbidden(tmp_path: Path) -> None:
    path = write(
        tmp_path, GOOD.replace("    name: Second\n", "    name: Second\n    chanels: []\n")
    )
    err = error_for(path)
    assert err.line == 12
    assert "steps.1.chanels" in err.reason
    assert "Extra inputs are not permitted" in err.reason
    assert f"{path}:12:" in str(err)


def test_top_level_typo(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("cycle_days: 30", "cycle_dayz: 30"))
    err = error_for(path)
    assert err.line == 3
    assert "cycle_dayz" in err.reason


def test_broken_indentation(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    day: 10\n", "      day: 10\n"))
    err = error_for(path)
    assert err.path == str(path)
    assert err.line == 10
    assert "invalid YAML" in err.reason


def test_step_day_beyond_cycle_reason(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("cycle_days: 30", "cycle_days: 5"))
    err = error_for(path)
    assert str(path) in str(err)
    assert "day 10" in err.reason and "5-day cycle" in err.reason


def test_step_day_beyond_cycle_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("cycle_days: 30", "cycle_days: 5"))
    assert error_for(path).line in (9, 10)


def test_duplicate_step_keys_reason(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("key: day-10", "key: day-1"))
    err = error_for(path)
    assert str(path) in str(err)
    assert "step keys must be unique" in err.reason


def test_duplicate_step_keys_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("key: day-10", "key: day-1"))
    assert error_for(path).line == 9


def test_key_must_match_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "key: other\n" + GOOD)
    err = error_for(path)
    assert err.line == 1
    assert "does not match the file name" in err.reason


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    assert error_for(write(tmp_path, "# nothing\n")).reason == "file is empty"
    assert "expected a mapping" in error_for(write(tmp_path, "- a\n- b\n")).reason


def test_no_campaign_files(tmp_path: Path) -> None:
    (tmp_path / "campaigns").mkdir()
    with pytest.raises(ConfigError, match="no campaign files"):
        load_campaigns(tmp_path)


def test_checksum_changes_with_content(tmp_path: Path) -> None:
    first = load_campaign(write(tmp_path, GOOD))
    same = load_campaign(write(tmp_path, "# another comment\n" + GOOD))
    changed = load_campaign(write(tmp_path, GOOD.replace("name: Second", "name: Other")))
    assert first.checksum() == same.checksum()
    assert first.checksum() != changed.checksum()
    assert len(first.checksum()) == 64


SEGMENTS = """\
rules:
  - segment: a
    campaign: x
  - segment: b
    campaign: nope
    when:
      lifecycle_stage: [lead]
"""


def test_segments_unknown_campaign_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "segments.yaml"
    path.write_text(SEGMENTS, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_segments(tmp_path, {"x", "y"})
    err = info.value
    assert err.line == 5
    assert f"{path}:5:" in str(err)
    assert "unknown campaign 'nope'" in err.reason
    assert "x, y" in err.reason


def test_segments_bad_condition_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "segments.yaml"
    path.write_text(SEGMENTS.replace("lifecycle_stage: [lead]", "stage: [lead]"), "utf-8")
    with pytest.raises(ConfigError) as info:
        load_segments(tmp_path, {"x", "nope"})
    assert info.value.line == 7


def test_segments_load_real_config() -> None:
    config_dir = Path(__file__).resolve().parents[2] / "config"
    campaigns = load_campaigns(config_dir)
    segments = load_segments(config_dir, set(campaigns))
    assert {rule.campaign for rule in segments.rules} <= set(campaigns)


CALENDAR = """\
starts_at: 2026-12-07
ends_at: 2027-01-31T18:00:00+01:00
blackout_dates: [2026-12-24, 2026-12-25]
send_days: [Mon, tue, thursday]
send_window: {start: "10:00", end: "16:00"}
"""


def test_calendar_keys_load_and_apply(tmp_path: Path) -> None:
    from datetime import UTC, date, datetime, time

    from leadops.delivery.policy import SendWindow

    campaign = load_campaign(write(tmp_path, GOOD + CALENDAR))
    assert campaign.starts_at == datetime(2026, 12, 7, tzinfo=UTC)
    assert campaign.ends_at == datetime(2027, 1, 31, 17, 0, tzinfo=UTC)
    assert not campaign.enrolls_at(datetime(2026, 12, 6, 23, 59, tzinfo=UTC))
    assert campaign.enrolls_at(datetime(2026, 12, 7, tzinfo=UTC))
    assert not campaign.enrolls_at(datetime(2027, 1, 31, 17, 0, tzinfo=UTC))
    default = SendWindow(time(9, 0), time(18, 0), frozenset(range(5)))
    window = campaign.send_window_from(default)
    assert window == SendWindow(
        time(10, 0),
        time(16, 0),
        frozenset({0, 1, 3}),
        frozenset({date(2026, 12, 24), date(2026, 12, 25)}),
    )
    plain = load_campaign(write(tmp_path, GOOD, "y"))
    assert plain.send_window_from(default) == default


def test_calendar_mistakes_name_the_key(tmp_path: Path) -> None:
    bad_order = error_for(write(tmp_path, GOOD + "starts_at: 2027-01-01\nends_at: 2026-12-01\n"))
    assert "ends_at" in str(bad_order) and "after it starts" in str(bad_order)
    bad_day = error_for(write(tmp_path, GOOD + "send_days: [mon, funday]\n"))
    assert "funday" in str(bad_day)
    bad_hours = error_for(write(tmp_path, GOOD + "send_window: {start: '16:00', end: '10:00'}\n"))
    assert "send_window" in str(bad_hours)


def test_a_campaign_without_calendar_keys_keeps_its_checksum(tmp_path: Path) -> None:
    """Nor without a goal and step rules (when, unless, wait_for)."""
    import hashlib
    import json

    campaign = load_campaign(write(tmp_path, GOOD))
    later = {"starts_at", "ends_at", "blackout_dates", "send_days", "send_window", "utm", "goal"}
    later |= {"sunset", "holdout"}
    before = {k: v for k, v in campaign.model_dump(mode="json").items() if k not in later}
    before["steps"] = [
        {k: v for k, v in step.items() if k not in {"when", "unless", "wait_for"}}
        for step in before["steps"]
    ]
    for step in before["steps"]:  # nor without experiments
        del step["variants"], step["metric"]
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert campaign.checksum() == expected
    dated = load_campaign(write(tmp_path, GOOD + "ends_at: 2027-01-01\n", "z"))
    assert dated.checksum() != expected
