"""The migration graph: one head, and every revision upgrades and downgrades on both databases.

Each migration that changes existing data also has its own test, named
`test_migration_<revision>_*.py`, that upgrades a database holding rows from before it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import current_revision, downgrade, head_revision, head_revisions, upgrade


def test_one_head() -> None:
    heads = head_revisions()
    assert len(heads) == 1, f"the migrations have {len(heads)} heads: {heads}; rechain them"


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    # The fixture has migrated to head already.
    assert current_revision(engine) == head_revision()
    downgrade(engine, "base")
    assert current_revision(engine) is None
    left = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    assert left == set(), f"downgrade to base left tables behind: {sorted(left)}"
    upgrade(engine)
    assert current_revision(engine) == head_revision()
