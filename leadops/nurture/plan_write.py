"""What planning writes for a batch of leads, in bulk, in the batch's transaction.

On PostgreSQL new enrollments and touches are COPYed into a temporary table and moved
with one INSERT ... SELECT ... ON CONFLICT DO NOTHING each; the segment update binds its
ids as one integer array literal. Elsewhere an executemany.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from leadops.core.bulk import bulk_insert, plain
from leadops.delivery.conditions import GOAL_REACHED
from leadops.delivery.suppression import leave_nurture, suppress
from leadops.models import ENROLLMENTS, LEADS, TOUCHES, EnrollmentStatus
from leadops.models.vocab import SuppressionReason


@dataclass
class PlanReport:
    leads: int = 0
    enrolled: Counter[str] = field(default_factory=Counter)
    exited: int = 0
    goals_reached: int = 0  # of the exits, those the campaign's goal ended
    completed: int = 0
    sunset: int = 0  # leads that finished a sunset campaign without engaging
    planned: int = 0
    planned_steps: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    conflicts: int = 0  # rows another planner had already written (skipped)

    def merge(self, other: PlanReport) -> None:
        self.leads += other.leads
        self.enrolled.update(other.enrolled)
        self.exited += other.exited
        self.goals_reached += other.goals_reached
        self.completed += other.completed
        self.sunset += other.sunset
        self.planned += other.planned
        self.planned_steps.update(other.planned_steps)
        self.conflicts += other.conflicts


def int_array(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal of integers, `{1,2,3}`: bound as one string (cast in
    the statement), which psycopg sends as it is, where a list is dumped element by
    element."""
    return "{" + ",".join(map(str, map(int, values))) + "}"


def _name_array(values: Iterable[object]) -> str:
    """An array literal of segment names, `{"a","b"}`; NULL elements for None. Names are
    lower-case letters, digits and dashes (leadops.nurture.segments.Rule): quoted, never
    escaped."""
    return "{" + ",".join("NULL" if v is None else f'"{v}"' for v in values) + "}"


@dataclass
class Writes:
    """What planning a batch of leads writes, in bulk at the end of the batch."""

    leads: int = 0  # leads planned in the batch

    enrollments: list[dict[str, Any]] = field(default_factory=list)
    touches: list[dict[str, Any]] = field(default_factory=list)
    # touches of enrollments created in this batch, by lead, until their ids are known
    waiting: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    segments: list[dict[str, object]] = field(default_factory=list)  # lead_id, segment
    completed: list[tuple[int, str]] = field(default_factory=list)  # enrollment id, reason
    # lead_id, end reason, whether the campaign's goal ended it
    exits: list[tuple[int, str, bool]] = field(default_factory=list)
    sunsets: list[tuple[int, list[str]]] = field(default_factory=list)  # lead_id, channels


def _update_segments(session: Session, segments: list[dict[str, object]], now: datetime) -> None:
    """Each lead's new segment, in one statement."""
    if not segments:
        return
    leads = LEADS.c
    if session.get_bind().dialect.name == "postgresql":
        ids = [row["lead_id"] for row in segments]
        # rows locked in id order first, so planners that overlap wait instead of deadlocking
        session.execute(
            sa.text(
                "SELECT id FROM leads WHERE id = ANY(CAST(:ids AS INTEGER[])) "
                "ORDER BY id FOR UPDATE"
            ),
            {"ids": int_array(ids)},
        )
        session.execute(
            sa.text(
                "UPDATE leads SET segment = v.segment, updated_at = :now FROM unnest("
                "CAST(:ids AS INTEGER[]), CAST(:segments AS VARCHAR[])) AS v(id, segment) "
                "WHERE leads.id = v.id"
            ),
            {
                "ids": int_array(ids),
                "segments": _name_array(row["segment"] for row in segments),
                "now": now,
            },
        )
        return
    session.execute(
        sa.update(LEADS)
        .where(leads.id == sa.bindparam("lead_id"))
        .values(segment=sa.bindparam("segment"), updated_at=now),
        segments,
    )


def _copy_insert(
    session: Session, table: sa.Table, rows: Sequence[dict[str, Any]], returning: list[str]
) -> list[Any]:
    """Insert `rows` skipping conflicts; the `returning` columns of the rows written.
    On PostgreSQL the rows are COPYed (binary) into a temporary table (per connection
    and column list, emptied at commit) and moved with one INSERT ... SELECT ... ON
    CONFLICT DO NOTHING: COPY encodes the rows in C, where binding arrays encodes each
    value in Python. Elsewhere an executemany (leadops.core.bulk)."""
    if session.get_bind().dialect.name != "postgresql":
        return bulk_insert(session, table, list(rows), returning)
    columns = list(rows[0])
    listed = ", ".join(columns)
    stage = f"plan_{table.name}_{zlib.crc32(listed.encode()):08x}"  # one per column list
    connection = session.connection()
    connection.execute(
        sa.text(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "  # noqa: S608 (our own column names)
            f"SELECT {listed} FROM {table.name} WITH NO DATA"
        )
    )
    # enum members as their values; everything else as it is
    enums = [i for i, name in enumerate(columns) if isinstance(rows[0][name], Enum)]
    pick = itemgetter(*columns)
    cursor = connection.connection.cursor()
    try:
        types = connection.info.get(stage)
        if types is None:  # the stage's column types, once per connection
            cursor.execute(f"SELECT {listed} FROM {stage} LIMIT 0")  # noqa: S608 (our own column names)
            types = connection.info[stage] = [c[1] for c in cursor.description or ()]  # type codes
        # binary, with the types given: psycopg encodes each value in C without looking
        # its dumper up (a tenth of the CPU of text COPY)
        with cursor.copy(f"COPY {stage} ({listed}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                values = list(pick(row))
                for i in enums:
                    values[i] = plain(values[i])
                copy.write_row(values)
    finally:
        cursor.close()
    written = connection.execute(
        sa.text(
            f"WITH moved AS (DELETE FROM {stage} RETURNING {listed}) "  # noqa: S608 (our own column names)
            f"INSERT INTO {table.name} ({listed}) SELECT {listed} FROM moved "
            f"ON CONFLICT DO NOTHING RETURNING {', '.join(returning)}"
        )
    ).all()
    return list(written)


def write(session: Session, writes: Writes, report: PlanReport, now: datetime) -> None:
    """End the enrollments that finished or exit (first, so a lead has one active
    enrollment), then insert new enrollments and all touches in bulk.

    Planners running at the same time (partitions on several workers, or the rescore run
    re-planning a lead) may plan the same lead: their conflicting rows are skipped by the
    constraints, so only what was really written is counted, and a lead whose enrollment
    another planner created first gets no touches from this one."""
    if writes.completed:
        e = ENROLLMENTS.c
        session.execute(
            sa.update(ENROLLMENTS)
            .where(e.id == sa.bindparam("enrollment_id"))
            .values(
                status=EnrollmentStatus.COMPLETED,
                ended_at=now,
                end_reason=sa.bindparam("reason"),
            ),
            [{"enrollment_id": id_, "reason": reason} for id_, reason in writes.completed],
        )
    for lead_id, reason, goal in writes.exits:
        leave_nurture(
            session.connection(),
            lead_id,
            GOAL_REACHED if goal else "enrollment_ended",
            now,
            end_reason=reason,
            status=EnrollmentStatus.GOAL_REACHED if goal else EnrollmentStatus.EXITED,
        )
    for lead_id, channels in writes.sunsets:
        suppress(session.connection(), lead_id, channels, SuppressionReason.SUNSET, now)
    _update_segments(session, writes.segments, now)
    if writes.enrollments:
        created = _copy_insert(
            session, ENROLLMENTS, writes.enrollments, ["id", "lead_id", "campaign"]
        )
        for enrollment_id, lead_id, campaign in created:
            report.enrolled[campaign] += 1
            for touch in writes.waiting.get(lead_id, []):
                touch["enrollment_id"] = enrollment_id
                writes.touches.append(touch)
        report.conflicts += len(writes.enrollments) - len(created)
    if writes.touches:
        written = _copy_insert(session, TOUCHES, writes.touches, ["campaign", "step", "channel"])
        report.planned += len(written)
        report.planned_steps.update(Counter((row[0], row[1], row[2]) for row in written))
        report.conflicts += len(writes.touches) - len(written)
