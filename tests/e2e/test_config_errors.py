"""Every configuration mistake ends in a one-line error naming the file or setting and the
fix: never a traceback, never silence. Run as a user runs it: the installed entry point."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from leadops.core.db import DatabaseNotReady, make_engine, upgrade
from leadops.core.settings import Settings, normalise_database_url
from tests.conftest import ROOT

UNREACHABLE_PG = "postgres://leadops:secret@127.0.0.1:1/leadops"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return tmp_path


def leadops(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEADOPS_")}
    return subprocess.run(
        [sys.executable, "-m", "leadops.cli", *args],
        cwd=project,
        env={**clean, "PREFECT_HOME": str(project / ".prefect"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def migrate(project: Path) -> None:
    """The database `leadops init` creates (without a process of its own)."""
    upgrade(make_engine(f"sqlite:///{project / 'data' / 'leadops.db'}"))


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one `error:` line; nothing else on stderr looks like a traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert result.stderr.rstrip().endswith(lines[0]), "the error is on one line"
    return lines[0]


def test_a_postgres_url_is_read_as_postgresql_psycopg(project: Path) -> None:
    assert normalise_database_url(UNREACHABLE_PG) == (
        "postgresql+psycopg://leadops:secret@127.0.0.1:1/leadops"
    )
    settings = Settings(database_url=UNREACHABLE_PG, _env_file=None)  # type: ignore[call-arg]
    assert settings.resolved_database_url.startswith("postgresql+psycopg://")
    assert make_engine(UNREACHABLE_PG).dialect.driver == "psycopg"
    line = error_line(leadops(project, "stats", LEADOPS_DATABASE_URL=UNREACHABLE_PG))
    assert "cannot reach the database postgresql+psycopg://leadops:***@127.0.0.1:1" in line
    assert "secret" not in line


def test_an_unknown_database_url_names_the_setting_and_the_forms_it_takes(
    project: Path,
) -> None:
    line = error_line(leadops(project, "stats", LEADOPS_DATABASE_URL="mysql://u:p@db/leads"))
    assert "LEADOPS_DATABASE_URL" in line and "'mysql'" in line
    assert "postgresql+psycopg://" in line and "sqlite:///" in line


def test_a_toml_syntax_error_names_the_file_line_and_column(project: Path) -> None:
    toml = project / "config" / "leadops.toml"
    lines = toml.read_text().splitlines()
    toml.write_text("\n".join([*lines, 'send_window_start = "09:00']) + "\n")
    for args in (["stats"], ["serve", "--port", "0"]):
        line = error_line(leadops(project, *args))
        assert line.startswith(
            f"error: config/leadops.toml:{len(lines) + 1}: invalid TOML at column 27:"
        ), line


def test_a_config_file_that_does_not_exist_is_an_error_not_ignored(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = project / "elsewhere" / "leadops.toml"
    line = error_line(leadops(project, "stats", LEADOPS_CONFIG_FILE=str(missing)))
    assert str(missing) in line and "LEADOPS_CONFIG_FILE" in line and "unset it" in line
    # without the variable, config/leadops.toml is optional
    (project / "config" / "leadops.toml").unlink()
    monkeypatch.chdir(project)
    monkeypatch.delenv("LEADOPS_CONFIG_FILE")
    assert Settings(_env_file=None).send_window_start  # type: ignore[call-arg]


def test_a_locked_sqlite_database_names_the_file_and_the_other_process(project: Path) -> None:
    migrate(project)
    holder = sqlite3.connect(project / "data" / "leadops.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another process writing
        for args in (["rescore", "--no-prefect"], ["run", "--no-prefect"]):
            line = error_line(leadops(project, *args, LEADOPS_SQLITE_LOCK_WAIT_SECONDS="0.2"))
            assert "the SQLite database data/leadops.db is locked" in line
            assert "another process" in line and "try again" in line
        imported = leadops(
            project,
            "leads",
            "import",
            "config/sample_leads.csv",
            LEADOPS_SQLITE_LOCK_WAIT_SECONDS="0.2",
        )
        assert error_line(imported).endswith("try again when it has finished")
    finally:
        holder.close()


def test_a_missing_templates_folder_is_named(project: Path) -> None:
    migrate(project)
    shutil.rmtree(project / "templates")
    line = error_line(leadops(project, "run", "--no-prefect"))
    assert "templates: templates folder not found" in line and "LEADOPS_TEMPLATES_DIR" in line


@pytest.mark.parametrize("url", ["mysql://u:p@db/leads", "not a url", "oracle://u@db/x"])
def test_make_engine_refuses_a_url_it_cannot_use_by_naming_the_setting(url: str) -> None:
    with pytest.raises(DatabaseNotReady, match="LEADOPS_DATABASE_URL"):
        make_engine(url)
