"""Shared fixtures: isolated settings, a migrated SQLite (or PostgreSQL) database per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from leadops.core.db import make_engine, upgrade
from leadops.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's .env or LEADOPS_* variables, or touches ~/.prefect."""
    for key in list(os.environ):
        if key.startswith("LEADOPS_") and key != "LEADOPS_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("LEADOPS_CONFIG_FILE", str(ROOT / "config" / "leadops.toml"))


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "config_dir": ROOT / "config",
        "templates_dir": ROOT / "templates",
        "secret_key": "test-secret-key-0123456789",
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


# Migrating a new database costs a third of a second (SQLite) to half a second
# (PostgreSQL) per test: each test process migrates one template of each once, and every
# test starts from a copy of it (a file copy; CREATE DATABASE ... TEMPLATE).


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file at the latest revision, for tests to copy."""
    path = tmp_path_factory.mktemp("template") / "leadops.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


def migrated_sqlite(settings: Settings, template: Path) -> Engine:
    """The settings' SQLite database, copied from the template (already at the latest
    revision: the upgrade only checks)."""
    target = Path(str(sa.engine.make_url(settings.resolved_database_url).database))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return engine


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[sa.engine.URL | str]:
    """A PostgreSQL database at the latest revision, for tests to copy; where the server
    is not reachable, the reason the tests that need it skip."""
    base = sa.engine.make_url(os.environ.get("LEADOPS_TEST_DATABASE_URL", DEFAULT_PG))
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"leadops_template_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        yield f"PostgreSQL not reachable at {base}: {type(exc).__name__}"
        return
    url = base.set(database=name)
    engine = make_engine(url.render_as_string(hide_password=False))
    upgrade(engine)
    engine.dispose()  # CREATE DATABASE ... TEMPLATE needs it without connections
    try:
        yield url
    finally:
        with admin.connect() as conn:
            for used in [*_FREE_DATABASES, name]:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{used}" WITH (FORCE)'))
        _FREE_DATABASES.clear()
        admin.dispose()


# Creating and dropping a database costs a checkpoint each (half a second to a second on
# this machine): a test process keeps the databases its tests used and empties them for
# the next test (rows deleted with foreign keys off, sequences restarted) unless the test
# changed the schema (a migration test), in which case the database is dropped.
_FREE_DATABASES: list[str] = []
_TEMPLATE_FINGERPRINTS: dict[str | None, str] = {}
SCHEMA_FINGERPRINT = sa.text(
    """
    SELECT md5(coalesce(string_agg(line, ',' ORDER BY line), '')) FROM (
        SELECT table_name || '.' || column_name || ':' || data_type || ':' || is_nullable
            || ':' || coalesce(column_default, '') AS line
        FROM information_schema.columns WHERE table_schema = 'public'
        UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
        UNION ALL SELECT conrelid::regclass || ':' || pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
        UNION ALL SELECT 'version:' || version_num FROM alembic_version
    ) AS schema
    """
)


def _fingerprint(url: sa.engine.URL) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return str(conn.execute(SCHEMA_FINGERPRINT).scalar_one())
    finally:
        engine.dispose()


def _emptied(url: sa.engine.URL, admin: Engine, expected: str) -> bool:
    """Empty a used test database for the next test: False when its schema is no longer
    the template's (it must be dropped instead)."""
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": url.database},
        )
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if str(conn.execute(SCHEMA_FINGERPRINT).scalar_one()) != expected:
                return False
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            tables = conn.execute(
                sa.text(
                    "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
                    " AND tablename <> 'alembic_version'"
                )
            ).scalars()
            for table in tables.all():
                conn.execute(sa.text(f"DELETE FROM {table}"))
            restart = "SELECT setval(seqrelid::regclass, seqstart, false) FROM pg_sequence"
            conn.execute(sa.text(restart))
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _postgres_engine(template: sa.engine.URL | str) -> Iterator[Engine]:
    """A database of its own for one test: an emptied one a test of this process used
    before, else a new copy of the template."""
    if isinstance(template, str):
        pytest.skip(template)
    admin = sa.create_engine(template.set(database="postgres"), isolation_level="AUTOCOMMIT")
    if template.database not in _TEMPLATE_FINGERPRINTS:
        _TEMPLATE_FINGERPRINTS[template.database] = _fingerprint(template)
    expected = _TEMPLATE_FINGERPRINTS[template.database]
    if _FREE_DATABASES:
        name = _FREE_DATABASES.pop()
    else:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template.database}"'))
    url = template.set(database=name)
    engine = sa.create_engine(url, pool_pre_ping=True)
    try:
        yield engine
    finally:
        engine.dispose()
        if _emptied(url, admin, expected):
            _FREE_DATABASES.append(name)
        else:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(
    request: pytest.FixtureRequest, settings: Settings, sqlite_template: Path
) -> Iterator[Engine]:
    """A database at the latest revision: SQLite file, and PostgreSQL where reachable."""
    if request.param == "sqlite":
        engine = migrated_sqlite(settings, sqlite_template)
        yield engine
        engine.dispose()
    else:
        template = request.getfixturevalue("postgres_template")
        for engine in _postgres_engine(template):
            upgrade(engine)  # at the latest revision already: this only checks
            yield engine


@pytest.fixture
def sqlite_engine(settings: Settings, sqlite_template: Path) -> Iterator[Engine]:
    engine = migrated_sqlite(settings, sqlite_template)
    yield engine
    engine.dispose()
