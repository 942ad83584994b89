"""Engine, sessions and schema migrations (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from leadops.core.settings import normalise_database_url

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"
# How long a SQLite connection waits for another process's write lock before it fails.
DEFAULT_LOCK_WAIT_SECONDS = 30.0


def lock_wait_seconds() -> float:
    """LEADOPS_SQLITE_LOCK_WAIT_SECONDS, read where engines are made (db has no settings)."""
    raw = os.environ.get("LEADOPS_SQLITE_LOCK_WAIT_SECONDS", "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_LOCK_WAIT_SECONDS
    except ValueError as exc:
        raise DatabaseNotReady(
            f"LEADOPS_SQLITE_LOCK_WAIT_SECONDS={raw!r} is not a number of seconds"
        ) from exc
    if not 0 <= value <= 3600:
        raise DatabaseNotReady("LEADOPS_SQLITE_LOCK_WAIT_SECONDS must be 0 to 3600")
    return value


class DatabaseNotReady(RuntimeError):
    """The database is missing, unreachable or not migrated to the current schema."""


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout. A `postgres://`
    URL is read as `postgresql+psycopg://`; a URL that is not one is DatabaseNotReady."""
    url = normalise_database_url(url)
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise DatabaseNotReady(
            "LEADOPS_DATABASE_URL is not a database URL: use sqlite:///path/to/leadops.db "
            "or postgresql+psycopg://user:pass@host/db"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        wait = lock_wait_seconds()
        engine = sa.create_engine(url, connect_args={"timeout": wait})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            cursor.close()

        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:  # a dialect or driver not shipped
        raise DatabaseNotReady(
            f"LEADOPS_DATABASE_URL: {parsed.drivername!r} is not a database leadops can use; "
            "use sqlite:///path/to/leadops.db or postgresql+psycopg://user:pass@host/db"
        ) from exc


def is_locked(exc: BaseException) -> bool:
    """Whether `exc` (or an error it was raised from) is SQLite's "database is locked"."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, sqlite3.OperationalError | sa.exc.OperationalError) and (
            "database is locked" in str(seen) or "database table is locked" in str(seen)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def locked_message(url: str) -> str:
    """One line for a SQLite database another process kept locked."""
    database = make_url(url).database or url
    return (
        f"the SQLite database {database} is locked: another process (a leadops command, "
        f"`leadops serve` or a worker) is writing to it and kept it for over "
        f"{lock_wait_seconds():g} s; try again when it has finished"
    )


def one_line(text: object) -> str:
    """A driver message on one line."""
    return " ".join(str(text).split())


def open_transaction(session: Session) -> None:
    """Make sure the session's transaction has begun in the database, so a savepoint
    nests in it. SQLite's driver begins a transaction only at the first write, and a
    SAVEPOINT issued before one starts a transaction of its own that commits on release."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        driver = connection.connection.dbapi_connection
        if driver is not None and not driver.in_transaction:
            connection.exec_driver_sql("BEGIN")


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
        if is_locked(exc):
            raise DatabaseNotReady(locked_message(str(engine.url))) from exc
        raise DatabaseNotReady(
            f"cannot reach the database {engine.url.render_as_string(hide_password=True)}: "
            f"{one_line(exc.orig)}"
        ) from exc
    head = head_revision()
    if current != head:
        raise DatabaseNotReady(
            f"database schema is at {current or 'nothing'}, expected {head}: "
            "run `leadops init` (or `leadops db upgrade`)"
        )


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sqlite3.OperationalError,
)


def is_transient(exc: BaseException | None) -> bool:
    """Worth retrying: the database or network was briefly unavailable (locked SQLite
    database, dropped PostgreSQL connection, timeout). Bugs and bad config are not."""
    return isinstance(exc, TRANSIENT_ERRORS)
