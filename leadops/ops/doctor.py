"""`leadops doctor`: check an installation without sending anything, and explain problems.

Each check returns a `Check` (leadops.ops.check) with a status (ok, warn, fail), what it
found, and how to fix it. Checks that need something an earlier check found broken are
reported as skipped. This module holds the check list (`run_checks`), the installation's
checks and the report rows; the Prefect checks are in leadops.ops.doctor_prefect.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from leadops.core.clock import clock_for
from leadops.core.settings import Settings
from leadops.ops.check import Check, Status
from leadops.ops.doctor_prefect import check_fast_path, check_prefect, check_schedules
from leadops.ops.handoff import fast_path_mode
from leadops.ops.industries import check_industries
from leadops.runtime import Runtime, build_runtime

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}  # noqa: S104  # names, not binds


def _settings_check(factory: Callable[[], Settings]) -> tuple[Check, Settings | None]:
    try:
        settings = factory()
    except ValidationError as exc:
        problems = "; ".join(
            f"LEADOPS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        return (
            Check(
                "settings",
                Status.FAIL,
                problems,
                "fix the variable in the environment, .env or config/leadops.toml "
                "(.env.example documents each)",
            ),
            None,
        )
    return Check("settings", Status.OK, "all settings valid"), settings


def check_database(runtime: Runtime) -> list[Check]:
    """Reachable, and migrated to the latest revision (the runtime's engine, unchecked)."""
    import sqlalchemy as sa

    from leadops.core.db import current_revision, head_revision

    engine = runtime.database
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        current = current_revision(engine)
    except sa.exc.SQLAlchemyError as exc:
        return [
            Check(
                "database",
                Status.FAIL,
                f"cannot reach {where}: {getattr(exc, 'orig', exc)}",
                "check LEADOPS_DATABASE_URL and that the server is up; `leadops init` "
                "creates a SQLite database",
            ),
            Check("migrations", Status.SKIPPED, "database unreachable"),
        ]
    head = head_revision()
    migrations = (
        Check("migrations", Status.OK, f"at the latest revision {head}")
        if current == head
        else Check(
            "migrations",
            Status.FAIL,
            f"database at {current or 'no revision'}, code expects {head}",
            "run `leadops db upgrade` (or `leadops init`)",
        )
    )
    return [Check("database", Status.OK, f"reachable: {where}"), migrations]


def check_config(runtime: Runtime) -> tuple[list[Check], dict[str, Any] | None]:
    """The runtime's campaigns and segments load; spend.yaml is optional."""
    from leadops.core.configfile import ConfigError
    from leadops.reporting.spend import load_spend

    settings = runtime.settings
    checks = []
    campaigns: dict[str, Any] | None = None
    try:
        campaigns = runtime.campaigns
        segments = runtime.segments
        checks.append(
            Check(
                "config",
                Status.OK,
                f"{len(campaigns)} campaigns, {len(segments.rules)} segment rules "
                f"in {settings.config_dir}",
            )
        )
    except (ConfigError, FileNotFoundError, OSError) as exc:
        checks.append(
            Check("config", Status.FAIL, str(exc), "fix the file and line named; see README")
        )
    try:
        currency, spend = load_spend(settings.config_dir)
        detail = (
            f"{len(spend)} sources with spend ({currency})"
            if spend
            else "no config/spend.yaml: cost per lead is not reported"
        )
        checks.append(Check("spend", Status.OK if spend else Status.WARN, detail))
    except ConfigError as exc:
        checks.append(Check("spend", Status.FAIL, str(exc), "fix config/spend.yaml"))
    return checks, campaigns


def check_templates(runtime: Runtime, campaigns: dict[str, Any] | None) -> Check:
    """Every campaign step renders on each of its channels against a sample lead, with the
    runtime's renderer."""
    from leadops.delivery.compose import SAMPLE_LEAD, check_all_templates

    settings = runtime.settings
    if campaigns is None:
        return Check("templates", Status.SKIPPED, "campaign config did not load")
    if not settings.templates_dir.is_dir():
        return Check(
            "templates",
            Status.FAIL,
            f"templates folder {settings.templates_dir} does not exist",
            "set LEADOPS_TEMPLATES_DIR",
        )
    result = check_all_templates(
        settings,
        campaigns,
        runtime.renderer,
        samples=(SAMPLE_LEAD,),
        unsubscribe="https://example.invalid/u/sample",
    )
    errors, rendered = [str(exc) for exc in result.errors], result.rendered
    if errors:
        shown = "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
        return Check("templates", Status.FAIL, shown, "`leadops templates check` lists every error")
    return Check("templates", Status.OK, f"{rendered} messages render")


def _base_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an absolute http(s) URL"
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        return f"{url} is plain http to a remote host"
    return None


def _outbox_check(name: str, folder: Path) -> Check:
    """The file outbox folder of a channel can be written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            name,
            Status.FAIL,
            f"outbox folder {folder} is not writable: {exc}",
            "set LEADOPS_OUTBOX_DIR or fix the folder's permissions",
        )
    return Check(name, Status.OK, f"file outbox, writable: {folder}")


def check_channels(settings: Settings, secret: Callable[[str], bool]) -> list[Check]:
    """Each configured channel has what it needs to send; nothing is sent.

    `secret(field)` tells whether a secret setting is available (environment or a Prefect
    Secret block).
    """
    from leadops.core.credentials import secret_fields

    checks = []
    for channel in ("email", "whatsapp", "sms"):
        kind = str(getattr(settings, f"{channel}_channel", "outbox"))
        name = f"channel {channel}"
        if kind == "outbox":
            checks.append(_outbox_check(name, settings.resolved_outbox_dir / channel))
            continue
        needs = {
            ("email", "sendgrid"): ["sendgrid_api_key"],
            ("whatsapp", "twilio"): [
                "twilio_account_sid",
                "twilio_auth_token",
                "twilio_whatsapp_from",
            ],
            ("sms", "twilio"): ["twilio_account_sid", "twilio_auth_token"],
        }.get((channel, kind))
        if needs is None:
            checks.append(Check(name, Status.FAIL, f"unknown channel type {kind!r}"))
            continue
        secret_names = set(secret_fields())
        missing = [
            f"LEADOPS_{field.upper()}"
            for field in needs
            if not (secret(field) if field in secret_names else getattr(settings, field, ""))
        ]
        if channel == "sms" and not (
            settings.twilio_messaging_service_sid or settings.twilio_sms_from
        ):
            missing.append("LEADOPS_TWILIO_MESSAGING_SERVICE_SID or LEADOPS_TWILIO_SMS_FROM")
        base = str(getattr(settings, f"{kind}_base_url", ""))
        problem = _base_url_problem(base) if base else None
        if missing:
            checks.append(
                Check(
                    name,
                    Status.FAIL,
                    f"{kind}: missing {', '.join(missing)}",
                    f"set them in the environment or as Prefect Secret blocks "
                    f"({settings.secret_block_prefix}<name-with-dashes>)",
                )
            )
        elif problem:
            checks.append(Check(name, Status.FAIL, f"{kind} base URL: {problem}"))
        else:
            checks.append(Check(name, Status.OK, f"{kind} configured (not contacted)"))
    key = settings.sendgrid_api_key
    if key is not None and not key.get_secret_value().startswith("SG."):
        checks.append(
            Check(
                "sendgrid key",
                Status.WARN,
                "LEADOPS_SENDGRID_API_KEY does not start with 'SG.'",
                "paste the API key itself, not its id",
            )
        )
    sid = settings.twilio_account_sid
    if sid and not (sid.startswith("AC") and len(sid) == 34):
        checks.append(
            Check(
                "twilio account",
                Status.WARN,
                "LEADOPS_TWILIO_ACCOUNT_SID should be 34 characters starting with AC",
            )
        )
    return checks


def check_public_url(settings: Settings) -> Check:
    """The base URL put in unsubscribe links and given to providers for webhooks."""
    url = settings.public_url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Check(
            "public url",
            Status.FAIL,
            f"LEADOPS_PUBLIC_URL={url!r} is not an absolute http(s) URL",
            "set it to the address providers and recipients reach, e.g. https://hooks.example.com",
        )
    if parts.query or parts.fragment:
        return Check(
            "public url",
            Status.FAIL,
            f"LEADOPS_PUBLIC_URL={url} has a query or fragment",
            "give the bare base URL",
        )
    if parts.hostname in LOCAL_HOSTS:
        return Check(
            "public url",
            Status.WARN,
            f"{url} is local: unsubscribe links and provider webhooks only work on this machine",
            "set LEADOPS_PUBLIC_URL to a public https address before sending for real",
        )
    if parts.scheme != "https":
        return Check(
            "public url",
            Status.FAIL,
            f"{url} is plain http: links would travel unencrypted and providers may refuse it",
            "use https",
        )
    return Check("public url", Status.OK, f"{url}")


def check_identity(settings: Settings) -> list[Check]:
    from email_validator import EmailNotValidError, validate_email

    checks = []
    try:
        validate_email(settings.sender_email, check_deliverability=False)
        checks.append(Check("sender", Status.OK, settings.sender_email))
    except EmailNotValidError as exc:
        checks.append(
            Check("sender", Status.FAIL, f"LEADOPS_SENDER_EMAIL: {exc}", "a valid address")
        )
    if not settings.postal_address.strip():
        checks.append(
            Check(
                "postal address",
                Status.FAIL,
                "LEADOPS_POSTAL_ADDRESS is empty; every commercial email must carry one",
                "set the company's postal address",
            )
        )
    if settings.secret_key is None:
        checks.append(
            Check(
                "secret key",
                Status.WARN,
                "LEADOPS_SECRET_KEY unset: a key generated in the data folder signs links",
                "set LEADOPS_SECRET_KEY (16+ characters) so every machine signs alike",
            )
        )
    return checks


def _secret_available(settings: Settings, field: str) -> bool:
    if getattr(settings, field, None) is not None:
        return True
    if not os.environ.get("PREFECT_API_URL"):
        return False
    from leadops.core.credentials import block_name, prefect_secret

    try:
        return bool(prefect_secret(block_name(settings, field)))
    except Exception:
        return False


def run_checks(factory: Callable[[], Settings]) -> list[Check]:
    """Every check, in order; later ones are skipped when settings do not load."""
    settings_check, settings = _settings_check(factory)
    checks = [settings_check]
    if settings is None:
        checks.append(Check("everything else", Status.SKIPPED, "settings did not load"))
        return checks
    runtime = build_runtime(settings)
    try:
        checks += check_database(runtime)
        config_checks, campaigns = check_config(runtime)
        checks += config_checks
        checks.append(check_templates(runtime, campaigns))
        checks += check_industries(runtime)
    finally:
        runtime.dispose()
    checks += check_channels(settings, lambda field: _secret_available(settings, field))
    checks.append(check_public_url(settings))
    checks += check_identity(settings)
    prefect = check_prefect()
    checks.append(prefect)
    api_url = os.environ.get("PREFECT_API_URL")
    mode = fast_path_mode(settings, os.environ)
    if mode != "prefect" or not api_url:
        checks.append(check_fast_path(mode, api_url, clock_for(None).now()))
    if api_url and prefect.status == Status.OK:
        import requests

        project = Path(os.environ.get("LEADOPS_HOME") or ".")
        try:
            now = clock_for(None).now()
            checks += check_schedules(api_url, project / "prefect.yaml", now)
            if mode == "prefect":
                checks.append(check_fast_path(mode, api_url, now))
        except requests.RequestException as exc:
            checks.append(
                Check(
                    "schedules",
                    Status.FAIL,
                    f"the Prefect API at {api_url} failed: {exc}",
                    "check the server's log",
                )
            )
    return checks


def rows(checks: list[Check]) -> list[dict[str, str]]:
    return [
        {"check": c.name, "status": str(c.status), "detail": c.detail, "fix": c.fix} for c in checks
    ]


def failed(checks: list[Check]) -> bool:
    return any(c.status == Status.FAIL for c in checks)
