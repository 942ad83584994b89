"""A database-wide run lock, so two nurture runs never work at the same time.

PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) held on its own connection.
SQLite: an exclusive `flock` on a file beside the database file. Both are released by the
operating system or the server when the holder dies, so a crashed run never leaves the
lock behind (and the dispatcher's expired leases put its claimed touches back; see
`Dispatcher.recover_stale`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger("leadops.locks")


class LockHeld(RuntimeError):
    """Another run holds the lock."""


def _advisory_key(name: str) -> int:
    return zlib.crc32(f"leadops:{name}".encode())


def _lock_file(engine: Engine, name: str) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise ValueError("a run lock needs a file or server database, not an in-memory one")
    return Path(database).with_name(f"{Path(database).name}.{name}.lock")


@contextmanager
def run_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold the lock `name` for the block; raise LockHeld at once if another run has it."""
    if engine.dialect.name == "postgresql":
        key = _advisory_key(name)
        with engine.connect() as conn:
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one()
            conn.commit()
            if not got:
                raise LockHeld(f"another {name} run holds the database lock")
            try:
                yield
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                conn.commit()
        return
    path = _lock_file(engine, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LockHeld(f"another {name} run holds the lock file {path}") from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
