"""Engine, sessions and schema migrations (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseNotReady(RuntimeError):
    """The database is missing, unreachable or not migrated to the current schema."""


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return sa.create_engine(url, pool_pre_ping=True)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def plain(value: object) -> object:
    """Enum members as their plain values (array parameters are not adapted per type)."""
    return value.value if isinstance(value, Enum) else value


def bulk_update(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    shared: Mapping[str, Any],
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> int:
    """Update each row (by its "id") with its own values plus `shared`, where `where`
    also holds; all rows carry the same keys. On PostgreSQL one UPDATE ... FROM unnest
    (a column per array: a thousand rows cost little more than one); elsewhere an
    executemany. Returns the number of rows updated."""
    if not rows:
        return 0
    columns = [name for name in rows[0] if name != "id"]
    if conn.dialect.name == "postgresql":
        arrays = [
            sa.cast(
                sa.bindparam(
                    f"v_{name}",
                    [plain(row[name]) for row in rows],
                    type_=ARRAY(table.c[name].type),
                ),
                ARRAY(table.c[name].type),
            )
            for name in ["id", *columns]
        ]
        values = (
            sa.func.unnest(*arrays)
            .table_valued(*["id", *columns])
            .render_derived(name="v", with_types=False)
        )
        statement = (
            sa.update(table)
            .where(table.c.id == values.c.id, *where)
            .values(**shared, **{name: values.c[name] for name in columns})
        )
        return conn.execute(statement).rowcount
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("v_id"), *where)
        .values(**shared, **{name: sa.bindparam(f"v_{name}") for name in columns})
    )
    params = [{f"v_{name}": row[name] for name in ["id", *columns]} for row in rows]
    return conn.execute(statement, params).rowcount


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (the same migrations serve SQLite and PostgreSQL)."""
    command.upgrade(_alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Undo migrations down to `revision` ("base" removes every table)."""
    command.downgrade(_alembic_config(engine), revision)


def head_revisions() -> tuple[str, ...]:
    """Every head of the migration graph; there must be exactly one."""
    return tuple(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_ready(engine: Engine) -> None:
    """Fail with a clear message unless the database is reachable and at the latest schema."""
    try:
        current = current_revision(engine)
    except sa.exc.OperationalError as exc:
        raise DatabaseNotReady(
            f"cannot reach the database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}"
        ) from exc
    head = head_revision()
    if current != head:
        raise DatabaseNotReady(
            f"database schema is at {current or 'nothing'}, expected {head}: "
            "run `leadops init` (or `leadops db upgrade`)"
        )
