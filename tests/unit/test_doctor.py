"""Doctor checks that need no database: channels, provider credentials and the public URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from leadops.ops.check import Status
from leadops.ops.doctor import check_channels, check_public_url
from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("https://hooks.example.com", Status.OK, "hooks.example.com"),
        ("http://127.0.0.1:8000", Status.WARN, "is local"),
        ("http://hooks.example.com", Status.FAIL, "plain http"),
        ("hooks.example.com", Status.FAIL, "not an absolute"),
        ("https://hooks.example.com/?a=1", Status.FAIL, "query"),
    ],
)
def test_public_url(tmp_path: Path, url: str, status: Status, words: str) -> None:
    check = check_public_url(make_settings(tmp_path, public_url=url))
    assert check.status == status and words in check.detail


def test_outbox_channels_are_writable(tmp_path: Path) -> None:
    checks = check_channels(make_settings(tmp_path), lambda field: False)
    assert [c.status for c in checks] == [Status.OK, Status.OK, Status.OK]
    assert (tmp_path / "data" / "outbox" / "email").is_dir()


def test_provider_channels_name_missing_credentials_without_sending(tmp_path: Path) -> None:
    settings = make_settings(tmp_path).model_copy(
        update={
            "email_channel": "sendgrid",
            "whatsapp_channel": "twilio",
            "twilio_account_sid": "AC123",
            "sendgrid_api_key": SecretStr("not-a-key"),
            "sendgrid_base_url": "http://api.example.com",
        }
    )
    checks = {
        c.name: c for c in check_channels(settings, lambda field: field == "sendgrid_api_key")
    }
    assert checks["channel email"].status == Status.FAIL
    assert "plain http" in checks["channel email"].detail
    whatsapp = checks["channel whatsapp"]
    assert whatsapp.status == Status.FAIL
    assert "LEADOPS_TWILIO_AUTH_TOKEN" in whatsapp.detail
    assert "LEADOPS_TWILIO_WHATSAPP_FROM" in whatsapp.detail
    assert "leadops-" in whatsapp.fix
    assert checks["sendgrid key"].status == Status.WARN
    assert checks["twilio account"].status == Status.WARN
    assert "not-a-key" not in repr(list(checks.values()))
