"""Provider credentials from Prefect Secret blocks, for settings the environment left empty.

The environment always wins. For each secret setting (a SecretStr field such as
`sendgrid_api_key`) that is unset, the block `<secret_block_prefix><field-with-dashes>`
(e.g. `leadops-sendgrid-api-key`) is read if it exists. Values are never logged; only
the names of the blocks used are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import SecretStr

from leadops.core.settings import Settings

log = logging.getLogger("leadops.credentials")

SecretLoader = Callable[[str], str | None]


def secret_fields() -> list[str]:
    """Every settings field that holds a secret."""
    return [
        name for name, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation)
    ]


def block_name(settings: Settings, field: str) -> str:
    return settings.secret_block_prefix + field.replace("_", "-")


def prefect_secret(name: str) -> str | None:
    """The value of the Prefect Secret block `name`, or None if there is no such block."""
    from prefect.blocks.system import Secret

    try:
        block: Secret[str] = Secret.load(name, _sync=True)  # type: ignore[call-arg,assignment]
    except ValueError:  # no block of that name
        return None
    value = block.get()
    return value if isinstance(value, str) else None


def with_secret_blocks(settings: Settings, loader: SecretLoader = prefect_secret) -> Settings:
    """Settings with every unset secret filled from its Secret block, where one exists."""
    updates: dict[str, SecretStr] = {}
    for field in secret_fields():
        if getattr(settings, field) is not None:
            continue
        name = block_name(settings, field)
        value = loader(name)
        if value:
            updates[field] = SecretStr(value)
            log.info("%s read from the Prefect Secret block %s", field, name)
    return settings.model_copy(update=updates) if updates else settings
