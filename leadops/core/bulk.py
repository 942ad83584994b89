"""Generic bulk SQL: many rows in one statement, on PostgreSQL and SQLite.

On PostgreSQL a batch of rows is bound as one array per column and unnested in the
statement (a thousand rows cost little more than one); elsewhere an executemany, which
`execute_many` hands to SQLite's driver as plain tuples. `among` binds a list of ids (or
keys) as one parameter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Insert, Table, insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlmodel import Session


def plain(value: object) -> object:
    """Enum members as their plain values (array parameters are not adapted per type)."""
    return value.value if isinstance(value, Enum) else value


def _unnest(
    table: sa.Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> sa.TableValuedAlias:
    """`unnest(CAST(:v_<column> AS <type>[]), ...) AS v(<columns>)`: the rows as one
    array parameter per column, typed as the table's columns (PostgreSQL)."""
    arrays = [
        sa.cast(
            sa.bindparam(
                f"v_{name}", [plain(row[name]) for row in rows], type_=ARRAY(table.c[name].type)
            ),
            ARRAY(table.c[name].type),
        )
        for name in columns
    ]
    return sa.func.unnest(*arrays).table_valued(*columns).render_derived(name="v", with_types=False)


def _remembered(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A bind processor that works out each distinct (hashable) value once: a batch's
    rows repeat the same times and codes."""
    seen: dict[Any, Any] = {}

    def run(value: Any) -> Any:
        try:
            return seen[value]
        except KeyError:
            seen[value] = result = process(value)
            return result
        except TypeError:  # unhashable (a JSON value)
            return process(value)

    return run


def execute_many(
    conn: Connection, statement: sa.Insert | sa.Update, rows: Sequence[Mapping[str, Any]]
) -> int:
    """`conn.execute(statement, rows)` (all rows with the same keys), cheaper on SQLite:
    compiled once, each value through its type's bind processor, the rows handed to the
    driver's executemany as tuples. SQLAlchemy otherwise builds every row's parameters in
    Python, which costs more than SQLite's own work on the row. Statements with a bound
    value other than the rows' keys and plain literals take the ordinary path, as does
    every other database (PostgreSQL's driver batches an executemany itself). Returns the
    number of rows matched."""
    if not rows:
        return 0
    if conn.dialect.name != "sqlite":
        return int(conn.execute(statement, rows).rowcount)
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    order = list(compiled.positiontup or [])
    binds = [compiled.binds[name] for name in order]
    constants = {name: bind for name, bind in zip(order, binds, strict=True) if name not in rows[0]}
    if not order or any(
        bind.required or bind.callable or bind.value is None for bind in constants.values()
    ):
        return int(conn.execute(statement, rows).rowcount)
    processors = [
        bind.type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for bind in binds
    ]
    # each value as it is, processed, or the statement's constant
    slots = [
        (name, None if process is None else _remembered(process))
        for name, process in zip(order, processors, strict=True)
    ]
    params = []
    try:
        fixed = {
            name: bind.value if process is None else process(bind.value)
            for name, bind, process in zip(order, binds, processors, strict=True)
            if name in constants
        }
        for row in rows:
            values = []
            for name, process in slots:
                if name in fixed:
                    values.append(fixed[name])
                elif process is None:
                    values.append(row[name])
                else:
                    values.append(process(row[name]))
            params.append(tuple(values))
    except Exception as exc:  # a value its type refuses, raised as SQLAlchemy raises it
        raise sa.exc.StatementError(str(exc), compiled.string, None, exc) from exc
    return int(conn.exec_driver_sql(compiled.string, params).rowcount)


def among(dialect: str, column: sa.ColumnElement[Any], values: Iterable[Any]) -> Any:
    """`column IN values` bound as one parameter, whatever the number of values: on
    PostgreSQL `column = ANY(:array)`, on SQLite `column IN (SELECT value FROM
    json_each(:json))`. Values are ints or strings; the statement is the same for every
    batch (compiled once), and no value is coerced or named one by one. An int no
    integer column can hold is refused (OverflowError), as the drivers refuse it."""
    values = [v.value if isinstance(v, Enum) else v for v in values]
    if any(isinstance(v, int) and not -(2**63) <= v < 2**63 for v in values):
        raise OverflowError("Python int too large to convert to a 64-bit INTEGER")
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=ARRAY(column.type)))
    if dialect == "sqlite":
        listed = sa.func.json_each(sa.bindparam(None, json.dumps(values), type_=sa.String))
        return column.in_(sa.select(listed.table_valued("value").c.value))
    return column.in_(values)


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
        values = _unnest(table, ["id", *columns], rows)
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
    return execute_many(conn, statement, params)


def insert_skipping_conflicts(table: Table, dialect: str) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING (PostgreSQL and SQLite): a row that another
    planner already wrote (a UNIQUE or one-active constraint) is skipped, not an error."""
    if dialect == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    return insert(table)


def bulk_insert(
    session: Session, table: Table, rows: list[dict[str, Any]], returning: list[str]
) -> list[Any]:
    """Insert `rows` skipping conflicts, returning the `returning` columns of the rows
    written. On PostgreSQL one INSERT ... SELECT FROM unnest(arrays) statement (a column
    per array: a thousand rows cost about as much as one); elsewhere an executemany."""
    dialect = session.get_bind().dialect
    if not rows:
        return []
    if dialect.name != "postgresql":
        insert_rows = insert_skipping_conflicts(table, dialect.name)
        return list(
            session.execute(insert_rows.returning(*(table.c[c] for c in returning)), rows).all()
        )
    columns = list(rows[0])
    values = _unnest(table, columns, rows)
    statement = (
        postgresql_insert(table)
        .from_select(
            columns, sa.select(*(values.c[name] for name in columns)), include_defaults=False
        )
        .on_conflict_do_nothing()
        .returning(*(table.c[c] for c in returning))
    )
    return list(session.execute(statement).all())
