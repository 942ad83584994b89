"""The one runtime: each part built once and shared, loaded only when used, so a broken or
missing file fails what needs it, with its own error, and nothing else."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from leadops.cli import app
from leadops.core.configfile import ConfigError
from leadops.core.settings import Settings, get_settings
from leadops.delivery.campaigns import load_campaigns
from leadops.runtime import build_runtime
from leadops.sales.routing import load_routing
from leadops.web.app import create_app
from tests.conftest import ROOT, make_settings

NOW = "2026-12-01T08:00Z"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ROOT / "config", tmp_path / "config"))


def _break_campaigns(config_dir: Path) -> str:
    """Make a campaign file unreadable; the error load_campaigns gives for it."""
    (config_dir / "campaigns" / "educate.yaml").write_text("key: educate\nsteps: [\n")
    with pytest.raises(ConfigError) as failure:
        load_campaigns(config_dir)
    return str(failure.value)


def test_each_part_is_built_once_and_shared(settings: Settings, sqlite_engine: Engine) -> None:
    runtime = build_runtime(settings, engine=sqlite_engine)
    assert runtime.nurture() is runtime
    escalation = runtime.escalation
    assert escalation is not None and escalation is runtime.escalation
    assert escalation.engine is runtime.engine is sqlite_engine
    assert escalation.renderer is runtime.renderer
    assert escalation.settings is runtime.settings
    for channel in ("email", "whatsapp"):
        assert escalation.channels[channel] is runtime.channels[channel]
    assert escalation.channels["slack"] is runtime.slack
    assert runtime.email is runtime.channels["email"]
    assert "slack" not in runtime.channels  # the dispatcher's pools are the touch channels'
    assert runtime.campaigns is runtime.campaigns and runtime.intake is runtime.intake
    assert runtime.require_escalation() is escalation
    web = create_app(runtime=runtime)
    assert web.state.leadops is runtime


def test_nothing_is_loaded_until_asked_for(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, config_dir=tmp_path / "nowhere")
    runtime = build_runtime(settings)  # no config folder, no database: nothing fails yet
    with pytest.raises(ConfigError, match="nowhere"):
        runtime.nurture()


def test_without_routing_yaml_only_escalation_is_off(
    tmp_path: Path, config_dir: Path, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    (config_dir / "routing.yaml").unlink()
    settings = make_settings(tmp_path, config_dir=config_dir)
    runtime = build_runtime(settings, engine=sqlite_engine)
    with caplog.at_level(logging.WARNING, logger="leadops.handoff"):
        assert runtime.escalation is None
        assert runtime.escalation is None
    off = [r.getMessage() for r in caplog.records if "escalation is off" in r.getMessage()]
    assert off == [f"escalation is off: {config_dir / 'routing.yaml'} does not exist"]
    assert runtime.check() is runtime  # campaigns, segments, channels, intake all load
    with pytest.raises(ConfigError) as missing:
        runtime.require_escalation()
    with pytest.raises(ConfigError) as direct:
        load_routing(config_dir / "routing.yaml")
    assert str(missing.value) == str(direct.value)


def test_a_broken_campaigns_file_fails_what_needs_campaigns_only(
    tmp_path: Path, config_dir: Path, sqlite_engine: Engine
) -> None:
    message = _break_campaigns(config_dir)
    runtime = build_runtime(make_settings(tmp_path, config_dir=config_dir), engine=sqlite_engine)
    for needs_campaigns in (runtime.nurture, runtime.check):
        with pytest.raises(ConfigError) as failure:
            needs_campaigns()
        assert str(failure.value) == message
    assert runtime.engine is sqlite_engine
    assert runtime.intake.csv is not None
    assert runtime.escalation is not None and runtime.escalation.routing.reps


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    monkeypatch.setenv("LEADOPS_CONFIG_FILE", str(tmp_path / "config" / "leadops.toml"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_commands_fail_on_a_broken_campaigns_file_only_when_they_need_it(workdir: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    message = _break_campaigns(Path("config"))  # as the commands name it, from the cwd
    for args in (["run", "--no-prefect", "--now", NOW], ["rescore", "--no-prefect"]):
        failed = runner.invoke(app, args)
        assert isinstance(failed.exception, ConfigError), failed.output
        assert str(failed.exception) == message
    for args in (
        ["leads", "import", "config/sample_leads.csv", "--now", NOW],
        ["intake", "run", "--now", NOW],
        ["stats"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output, result.exception)
