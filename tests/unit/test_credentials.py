"""Provider credentials from Prefect Secret blocks when the environment has none."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from leadops.core.credentials import block_name, secret_fields, with_secret_blocks
from tests.conftest import make_settings


def test_blocks_fill_only_missing_secrets_and_values_are_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, sendgrid_api_key="SG.from-env")
    blocks = {"leadops-sendgrid-api-key": "SG.from-block", "leadops-twilio-auth-token": "tok-123"}
    asked: list[str] = []

    def loader(name: str) -> str | None:
        asked.append(name)
        return blocks.get(name)

    with caplog.at_level(logging.INFO, logger="leadops"):
        filled = with_secret_blocks(settings, loader)
    assert filled.sendgrid_api_key is not None
    assert filled.sendgrid_api_key.get_secret_value() == "SG.from-env"  # the environment wins
    assert filled.twilio_auth_token is not None
    assert filled.twilio_auth_token.get_secret_value() == "tok-123"
    assert "leadops-sendgrid-api-key" not in asked
    assert "leadops-twilio-auth-token" in caplog.text
    assert "tok-123" not in caplog.text and "tok-123" not in repr(filled)


def test_secret_fields_and_block_names(tmp_path: Path) -> None:
    assert {"sendgrid_api_key", "twilio_auth_token", "secret_key"} <= set(secret_fields())
    settings = make_settings(tmp_path, secret_block_prefix="acme-")
    assert block_name(settings, "twilio_auth_token") == "acme-twilio-auth-token"
    assert with_secret_blocks(settings, lambda name: None) is settings
