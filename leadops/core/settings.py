"""Settings from LEADOPS_* environment variables, a .env file and config/leadops.toml.

Precedence, highest first: explicit arguments, environment, .env, config/leadops.toml,
defaults. Secrets are SecretStr so they never appear in logs or reprs.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from leadops.core.clock import known_timezone
from leadops.core.configfile import ConfigError
from leadops.core.keys import ec_public_key

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


def _toml_file() -> Path:
    return Path(os.environ.get("LEADOPS_CONFIG_FILE", "config/leadops.toml"))


def _toml_source(settings_cls: type[BaseSettings]) -> TomlConfigSettingsSource:
    """config/leadops.toml (or LEADOPS_CONFIG_FILE, which must exist when it is set);
    a syntax error is a ConfigError naming the file, line and column."""
    path = _toml_file()
    if "LEADOPS_CONFIG_FILE" in os.environ and not path.is_file():
        raise ConfigError(
            path,
            None,
            "LEADOPS_CONFIG_FILE names a file that does not exist: point it at your "
            "leadops.toml or unset it (the default is config/leadops.toml)",
        )
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"^(.*) \(at line (\d+), column (\d+)\)$", str(exc))
        if found is None:
            raise ConfigError(path, None, f"invalid TOML: {exc}") from exc
        reason, line, column = found.group(1), int(found.group(2)), found.group(3)
        raise ConfigError(
            path, line, f"invalid TOML at column {column}: {reason} (fix the syntax there)"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not UTF-8 text ({exc.reason})") from exc


def normalise_database_url(url: str) -> str:
    """`postgres://` and `postgresql://` (as hosting providers write them) become
    `postgresql+psycopg://`, the driver leadops ships; other URLs are kept as they are."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


class Settings(BaseSettings):
    """Every setting leadops reads. `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="LEADOPS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Where things live
    data_dir: Path = Path("data")
    config_dir: Path = Path("config")
    templates_dir: Path = Path("templates")
    database_url: str = ""
    outbox_dir: Path | None = None

    # Channels: the file outbox (default) or the real provider
    email_channel: Literal["outbox", "sendgrid"] = "outbox"
    whatsapp_channel: Literal["outbox", "twilio"] = "outbox"
    sms_channel: Literal["outbox", "twilio"] = "outbox"

    # Who sends, and what every email footer must carry (CAN-SPAM)
    company_name: str = "Northwind Analytics"
    company_website: str = "https://northwind.example"
    sender_email: str = "hello@northwind.example"
    sender_name: str = "Northwind Analytics"
    reply_to_email: str = ""
    postal_address: str = (
        "Northwind Analytics Ltd., 42 Harbour Street, Bristol BS1 4QA, United Kingdom"
    )
    default_rep_name: str = "Maya Okafor"
    default_rep_email: str = "maya.okafor@northwind.example"
    default_rep_title: str = "Customer Success Lead"

    # Links and signing
    public_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None

    # Contact policy
    send_window_start: time = time(9, 0)
    send_window_end: time = time(18, 0)
    send_weekdays: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    cap_per_day: int = Field(default=2, ge=1)
    cap_per_week: int = Field(default=4, ge=1)

    # Normalisation
    default_region: str = "US"
    default_timezone: str = "UTC"

    # Dispatch
    dispatch_batch_size: int = Field(default=500, ge=1)
    # Touches marked `sending` in one commit (at least one per sending thread); a crash
    # leaves at most two chunks ambiguous (2 x 32 = 64 touches at the default); larger
    # chunks cost fewer commits per message (128: about 0.04 ms less per message on SQLite,
    # and up to 256 touches in doubt after a crash).
    dispatch_chunk_size: int = Field(default=32, ge=1, le=1000)
    claim_lease_seconds: int = Field(default=300, ge=10)

    # Provider credentials, read from the environment only (provider channels use them)
    sendgrid_api_key: SecretStr | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr | None = None
    twilio_whatsapp_from: str = ""
    # SMS goes from a Messaging Service (MG..., preferred: it holds the numbers, Advanced
    # Opt-Out and the sender pool) or else from one E.164 number.
    twilio_messaging_service_sid: str = ""
    twilio_sms_from: str = ""
    twilio_base_url: str = "https://api.twilio.com"

    # Engagement webhooks (leadops serve) and rescoring
    sendgrid_webhook_public_key: str = ""  # base64 DER public key of the signed Event Webhook
    site_events_secret: SecretStr | None = None  # HMAC-SHA256 key of POST /events/site
    webhooks_insecure_dev: bool = False  # accept unsigned requests where no secret is set
    webhook_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    webhook_max_age_seconds: int = Field(default=600, ge=10)  # signed timestamps older: refused
    # Email replies through SendGrid Inbound Parse (POST /webhooks/sendgrid/inbound): the
    # domain whose MX points at SendGrid (nurture emails get a Reply-To there), the Parse
    # security policy's public key, and the largest email (attachments included) accepted
    inbound_email_domain: str = ""
    inbound_email_public_key: str = ""  # base64 DER public key of the Parse security policy
    inbound_email_max_bytes: int = Field(default=10_485_760, ge=1024)
    # A hand-raise reaching `leadops serve` starts a pass at once (leadops.ops.handoff):
    # auto = a Prefect background task when PREFECT_API_URL is set, else a thread in serve
    fast_path: Literal["auto", "prefect", "thread", "off"] = "auto"
    # Escalation: routing file, acknowledge links, Slack incoming webhooks
    routing_file: Path | None = None  # default: <config_dir>/routing.yaml
    ack_link_valid_hours: int = Field(default=72, ge=1)
    slack_timeout_seconds: float = Field(default=10.0, gt=0)
    escalation_scan_limit: int = Field(default=1000, ge=1)
    # Operations: the daily report, its stuck-work detector, Prefect Secret blocks
    report_dir: Path | None = None
    stuck_threshold: int = Field(default=0, ge=0)
    stuck_after_hours: int = Field(default=24, ge=1)
    stuck_lookback_hours: int = Field(default=24, ge=1)
    secret_block_prefix: str = "leadops-"  # noqa: S105  # a name prefix, not a secret
    # Intake: HubSpot CRM source (sources themselves are configured in config/intake.yaml)
    hubspot_token: SecretStr | None = None
    hubspot_base_url: str = "https://api.hubapi.com"
    # Delivery: provider requests, rate limits and concurrency
    sendgrid_timeout_seconds: float = Field(default=10.0, gt=0)
    sendgrid_sandbox: bool = False
    sendgrid_rate_per_second: float = Field(default=100.0, gt=0)
    sendgrid_concurrency: int = Field(default=16, ge=1, le=64)
    twilio_timeout_seconds: float = Field(default=10.0, gt=0)
    twilio_rate_per_second: float = Field(default=50.0, gt=0)
    twilio_concurrency: int = Field(default=16, ge=1, le=64)
    whatsapp_session_hours: int = Field(default=24, ge=1, le=24)
    # The name the first SMS to a lead starts with (empty: company_name).
    sms_sender_name: str = ""
    # `templates check` / `preview` warn about an SMS of more segments than this.
    sms_max_segments: int = Field(default=2, ge=1, le=10)
    provider_retry_attempts: int = Field(default=3, ge=1, le=10)
    provider_retry_max_wait_seconds: float = Field(default=5.0, ge=0)
    # Throughput: dispatcher processes sharing the database (rate limits and concurrency
    # above are totals, split between them)
    dispatch_workers: int = Field(default=1, ge=1, le=32)
    # Scale: nurture planning split into partitions (Prefect task runs); unset: 1 on
    # SQLite, 4 on PostgreSQL
    plan_partitions: int | None = Field(default=None, ge=1, le=64)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _toml_source(settings_cls)
        return init_settings, env_settings, dotenv_settings, toml, file_secret_settings

    @field_validator("send_weekdays", mode="before")
    @classmethod
    def _split_weekdays(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            bad = [day for day in value if str(day).lower()[:3] not in WEEKDAY_NAMES]
            if bad:
                raise ValueError(f"unknown weekday(s) {bad}; use {', '.join(WEEKDAY_NAMES)}")
            return [str(day).lower()[:3] for day in value]
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        value = normalise_database_url(value.strip())
        if value and not value.startswith(
            ("sqlite://", "sqlite+pysqlite://", "postgresql+psycopg://")
        ):
            scheme = value.split("://", 1)[0] if "://" in value else value[:20]
            raise ValueError(
                f"LEADOPS_DATABASE_URL: {scheme!r} is not a database leadops can use; "
                "use sqlite:///path/to/leadops.db or postgresql+psycopg://user:pass@host/db"
            )
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return known_timezone(value)

    @field_validator("sendgrid_webhook_public_key", "inbound_email_public_key")
    @classmethod
    def _loadable_public_key(cls, value: str) -> str:
        value = value.strip()
        if value:
            ec_public_key(value)
        return value

    @field_validator("twilio_messaging_service_sid")
    @classmethod
    def _messaging_service(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"MG[0-9a-fA-F]{32}", value):
            raise ValueError(
                f"LEADOPS_TWILIO_MESSAGING_SERVICE_SID {value[:40]!r} is not a Messaging "
                "Service SID (MG + 32 hex digits)"
            )
        return value

    @field_validator("twilio_sms_from")
    @classmethod
    def _sms_from(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"\+[1-9][0-9]{6,14}", value):
            raise ValueError(
                f"LEADOPS_TWILIO_SMS_FROM {value[:40]!r} is not an E.164 number (+ and digits)"
            )
        return value

    @field_validator("inbound_email_domain")
    @classmethod
    def _mail_domain(cls, value: str) -> str:
        value = value.strip().lower().rstrip(".")
        if value and not _DOMAIN.fullmatch(value):
            raise ValueError(
                f"LEADOPS_INBOUND_EMAIL_DOMAIN {value[:80]!r} is not a domain name "
                "(e.g. reply.northwind.example, whose MX record points at mx.sendgrid.net)"
            )
        return value

    @model_validator(mode="after")
    def _window_is_sane(self) -> Settings:
        if self.send_window_start >= self.send_window_end:
            raise ValueError("send_window_start must be before send_window_end")
        return self

    @model_validator(mode="after")
    def _provider_credentials(self) -> Settings:
        """A provider channel without its credentials fails now, not at send time."""
        missing: list[str] = []
        if self.email_channel == "sendgrid":
            key = self.sendgrid_api_key.get_secret_value() if self.sendgrid_api_key else ""
            if not key.strip():
                missing.append("LEADOPS_SENDGRID_API_KEY")
        if self.whatsapp_channel == "twilio":
            token = self.twilio_auth_token.get_secret_value() if self.twilio_auth_token else ""
            if not self.twilio_account_sid.strip():
                missing.append("LEADOPS_TWILIO_ACCOUNT_SID")
            if not token.strip():
                missing.append("LEADOPS_TWILIO_AUTH_TOKEN")
            if not self.twilio_whatsapp_from.strip():
                missing.append("LEADOPS_TWILIO_WHATSAPP_FROM")
        missing += self._missing_sms_credentials()
        if missing:
            raise ValueError(
                "provider channel chosen without credentials: set "
                + ", ".join(dict.fromkeys(missing))
                + " (or choose LEADOPS_EMAIL_CHANNEL / LEADOPS_WHATSAPP_CHANNEL /"
                " LEADOPS_SMS_CHANNEL=outbox)"
            )
        return self

    def _missing_sms_credentials(self) -> list[str]:
        if self.sms_channel != "twilio":
            return []
        token = self.twilio_auth_token.get_secret_value() if self.twilio_auth_token else ""
        missing = [] if self.twilio_account_sid.strip() else ["LEADOPS_TWILIO_ACCOUNT_SID"]
        if not token.strip():
            missing.append("LEADOPS_TWILIO_AUTH_TOKEN")
        if not (self.twilio_messaging_service_sid.strip() or self.twilio_sms_from.strip()):
            missing.append("LEADOPS_TWILIO_MESSAGING_SERVICE_SID or LEADOPS_TWILIO_SMS_FROM")
        return missing

    @property
    def resolved_sms_sender(self) -> str:
        """The sender identity of the first SMS to a lead."""
        return self.sms_sender_name.strip() or self.company_name

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'leadops.db').as_posix()}"

    @property
    def resolved_plan_partitions(self) -> int:
        """How many partitions the nurture flow plans in (LEADOPS_PLAN_PARTITIONS)."""
        if self.plan_partitions is not None:
            return self.plan_partitions
        return 4 if self.resolved_database_url.startswith("postgresql") else 1

    @property
    def resolved_outbox_dir(self) -> Path:
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def resolved_report_dir(self) -> Path:
        return self.report_dir or self.data_dir / "reports"

    @property
    def weekday_numbers(self) -> frozenset[int]:
        return frozenset(WEEKDAY_NAMES.index(day) for day in self.send_weekdays)

    def signing_key(self) -> bytes:
        """The key that signs unsubscribe and confirmation links.

        From LEADOPS_SECRET_KEY; otherwise a random key generated once and kept in the
        data folder (mode 0600), so links stay valid across runs of a local install.
        """
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value()
            if len(value) < 16:
                raise ValueError("LEADOPS_SECRET_KEY must be at least 16 characters")
            return value.encode()
        path = self.data_dir / ".secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return path.read_text().strip().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own Settings instead)."""
    return Settings()
