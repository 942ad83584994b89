"""Where the CLI's own flow runs keep their Prefect state, decided before Prefect loads."""

from __future__ import annotations

from pathlib import Path

from leadops.ops.prefect_stack import cli_prefect_environment


def test_cli_flow_runs_keep_prefect_state_in_the_data_folder(tmp_path: Path) -> None:
    added = cli_prefect_environment({}, tmp_path / "data")
    assert added["PREFECT_HOME"] == str((tmp_path / "data" / "prefect").resolve())
    assert added["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_a_server_or_a_prefect_home_of_the_operator_wins(tmp_path: Path) -> None:
    server = {"PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    assert "PREFECT_HOME" not in cli_prefect_environment(server, tmp_path)
    home = {"PREFECT_HOME": "/srv/prefect", "PREFECT_SERVER_ANALYTICS_ENABLED": "true"}
    added = cli_prefect_environment(home, tmp_path)
    assert "PREFECT_HOME" not in added
    assert "PREFECT_SERVER_ANALYTICS_ENABLED" not in added  # the environment wins
