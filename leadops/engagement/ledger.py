"""The score ledger and the stage machine: fit rows, the no-opens penalty, decay, each
lead's score as the sum of its rows, and the stage moves (and sales-ready leads) that
follow. Every score change is a ledger row (rule, points, reason, source event, time)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from leadops.core.bulk import among, bulk_update, execute_many
from leadops.engagement.grading import grade_leads
from leadops.engagement.report import SQL_TRIGGER, RescoreReport, SalesReady
from leadops.engagement.scoring import (
    FitFacts,
    ScoringConfig,
    decay_delta,
    fit_adjustments,
    fit_points,
    next_stage,
    sql_gate_mismatch,
    top_reasons,
)
from leadops.models import (
    LEADS,
    PASS_MARKS,
    SCORE_LEDGER,
    SENT_TOUCH_STATUSES,
    STAGE_CHANGES,
    TOUCHES,
    LifecycleStage,
    ScoreKind,
)

LEAD_BATCH = 5000
OPEN_RULES = ("email_open", "email_open_machine")
# Engagement rows that are not the lead doing something (they do not reset decay).
NOT_ACTIVITY = ("no_opens", "email_open_machine", "unsubscribe")


# -- fit, no-opens and decay -------------------------------------------------------------


def fit_columns() -> list[sa.ColumnElement[Any]]:
    """The lead columns the fit rules read (with the id)."""
    lead = LEADS.c
    return [
        lead.id,
        lead.seniority,
        lead.industry,
        lead.country,
        lead.company_size,
        lead.properties,
    ]


def fit_rows(
    connection: Connection, config: ScoringConfig, leads: Sequence[Any], now: datetime
) -> list[dict[str, Any]]:
    """The ledger rows that bring these leads' fit points in line with their profiles
    (rows of `fit_columns()`): a rule newly matched adds its points, one no longer
    matched takes them back."""
    s = SCORE_LEDGER.c
    recorded: dict[int, dict[str, int]] = defaultdict(dict)
    for lead_id, rule, points in connection.execute(
        sa.select(s.lead_id, s.rule, sa.func.sum(s.points))
        .where(s.kind == ScoreKind.FIT, s.lead_id.in_([r.id for r in leads]))
        .group_by(s.lead_id, s.rule)
    ).all():
        recorded[lead_id][rule] = int(points)
    rows = []
    for r in leads:
        facts = FitFacts(r.seniority, r.industry, r.country, r.company_size, r.properties)
        desired = fit_points(config, facts)
        for rule, delta in fit_adjustments(desired, recorded[r.id]).items():
            verb = "matches" if rule in desired else "no longer matches"
            rows.append(
                {
                    "lead_id": r.id,
                    "kind": ScoreKind.FIT,
                    "rule": rule,
                    "points": delta,
                    "reason": f"fit: {verb} {rule}",
                    "inbox_id": None,
                    "event_at": now,
                    "created_at": now,
                }
            )
    return rows


def apply_fit(
    engine: Engine, config: ScoringConfig, now: datetime, report: RescoreReport
) -> set[int]:
    """Bring every lead's fit rows in line with its profile and the fit rules."""
    changed: set[int] = set()
    last_id = 0
    while True:
        with engine.begin() as connection:
            leads = connection.execute(
                sa.select(*fit_columns())
                .where(LEADS.c.id > last_id)
                .order_by(LEADS.c.id)
                .limit(LEAD_BATCH)
            ).all()
            if not leads:
                return changed
            last_id = leads[-1].id
            rows = fit_rows(connection, config, leads, now)
            changed.update(row["lead_id"] for row in rows)
            if rows:
                execute_many(connection, SCORE_LEDGER.insert(), rows)
                report.fit_rows += len(rows)


NO_OPENS_MARK = "rescore:no_opens"


def apply_no_opens(
    engine: Engine, config: ScoringConfig, now: datetime, report: RescoreReport
) -> set[int]:
    """Once per quiet stretch: a lead emailed `no_opens_days` ago that has not opened since.

    Incremental: a lead can newly qualify only when its first email or its last open
    falls `no_opens_days` behind the clock, so a run looks only at emails sent and opens
    made in the window since the previous run (indexed ranges), plus opens and
    resubscribes recorded since (a late webhook). The first run, a clock set back, or a
    changed `no_opens_days` look at every lead. Leads are handled LEAD_BATCH at a time."""
    rule = config.engagement.get("no_opens")
    if rule is None:
        return set()
    days = timedelta(days=config.no_opens_days)
    detail = {"no_opens_days": config.no_opens_days}
    m, s = PASS_MARKS.c, SCORE_LEDGER.c
    with engine.connect() as connection:
        mark = connection.execute(
            sa.select(m.at, m.last_id, m.detail).where(m.name == NO_OPENS_MARK)
        ).first()
        last_id = connection.execute(sa.select(sa.func.max(s.id))).scalar_one() or 0
    if mark is None or _aware(mark.at) > now or mark.detail != detail:
        candidates = sa.select(LEADS.c.id.label("lead_id"))
    else:
        candidates = _no_opens_candidates(_aware(mark.at) - days, now - days, mark.last_id)
    penalised: set[int] = set()
    with engine.connect() as reader:
        result = reader.execution_options(stream_results=True, yield_per=LEAD_BATCH).execute(
            candidates.order_by("lead_id")
        )
        for part in result.partitions():
            ids = [row[0] for row in part]
            with engine.begin() as connection:
                penalised |= _no_opens_batch(connection, config, ids, now, report)
    with engine.begin() as connection:
        connection.execute(sa.delete(PASS_MARKS).where(m.name == NO_OPENS_MARK))
        connection.execute(
            sa.insert(PASS_MARKS).values(name=NO_OPENS_MARK, at=now, last_id=last_id, detail=detail)
        )
    return penalised


def _no_opens_candidates(since: datetime, until: datetime, last_id: int) -> sa.Select[Any]:
    """Leads whose first email or last open may have crossed the quiet threshold between
    two runs (times in (since, until]), and leads with opens or resubscribes recorded
    after ledger row `last_id`."""
    s, t = SCORE_LEDGER.c, TOUCHES.c
    sent = sa.select(t.lead_id).where(
        t.sent_at > since,
        t.sent_at <= until,
        t.channel == "email",
        t.status.in_(list(SENT_TOUCH_STATUSES)),
    )
    opened = sa.select(s.lead_id).where(
        s.rule.in_(OPEN_RULES), s.event_at > since, s.event_at <= until
    )
    late = sa.select(s.lead_id).where(s.id > last_id, s.rule.in_([*OPEN_RULES, "subscribe"]))
    union = sa.union(sent, opened, late).subquery()
    return sa.select(union.c.lead_id)


def _no_opens_batch(
    connection: Connection,
    config: ScoringConfig,
    ids: list[int],
    now: datetime,
    report: RescoreReport,
) -> set[int]:
    """Apply the no-opens rule to these leads (indexed lookups per lead id)."""
    rule = config.engagement["no_opens"]
    days = timedelta(days=config.no_opens_days)
    s, t = SCORE_LEDGER.c, TOUCHES.c
    first_sent = (
        sa.select(t.lead_id, sa.func.min(t.sent_at).label("first_sent"))
        .where(
            t.lead_id.in_(ids),
            t.channel == "email",
            t.status.in_(list(SENT_TOUCH_STATUSES)),
        )
        .group_by(t.lead_id)
        .subquery()
    )
    last_open = (
        sa.select(s.lead_id, sa.func.max(s.event_at).label("last_open"))
        .where(s.lead_id.in_(ids), s.rule.in_(OPEN_RULES))
        .group_by(s.lead_id)
        .subquery()
    )
    last_penalty = (
        sa.select(s.lead_id, sa.func.max(s.event_at).label("last_penalty"))
        .where(s.lead_id.in_(ids), s.rule == "no_opens")
        .group_by(s.lead_id)
        .subquery()
    )
    query = (
        sa.select(
            first_sent.c.lead_id,
            first_sent.c.first_sent,
            last_open.c.last_open,
            last_penalty.c.last_penalty,
        )
        .join(LEADS, LEADS.c.id == first_sent.c.lead_id)
        .outerjoin(last_open, last_open.c.lead_id == first_sent.c.lead_id)
        .outerjoin(last_penalty, last_penalty.c.lead_id == first_sent.c.lead_id)
        .where(LEADS.c.email_suppressed_at.is_(None), first_sent.c.first_sent <= now - days)
    )
    rows = []
    for lead_id, first, opened, penalised in connection.execute(query).all():
        first = _aware(first)
        reference = max(first, _aware(opened)) if opened is not None else first
        if now < reference + days:
            continue
        if penalised is not None and _aware(penalised) > reference:
            continue
        rows.append(
            {
                "lead_id": lead_id,
                "kind": ScoreKind.ENGAGEMENT,
                "rule": "no_opens",
                "points": rule.points,
                "reason": f"no email opened in {config.no_opens_days} days",
                "inbox_id": None,
                "event_at": reference + days,
                "created_at": now,
            }
        )
    if rows:
        execute_many(connection, SCORE_LEDGER.insert(), rows)
    report.ledger_rows += len(rows)
    return {row["lead_id"] for row in rows}


def _aware(value: datetime) -> datetime:
    """Aggregates over UTCDateTime come back naive from SQLite; they are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def apply_decay(
    engine: Engine, config: ScoringConfig, now: datetime, report: RescoreReport
) -> set[int]:
    """Decay the engagement balance of leads inactive for longer than the grace period.

    The balance that decays is the one right after the lead's last activity (engagement
    rows up to it, earlier decay included); later penalties (no opens) are not decayed.
    Lead ids are streamed and decayed LEAD_BATCH at a time, one transaction each.
    """
    decayed: set[int] = set()
    with engine.connect() as reader:
        result = reader.execution_options(stream_results=True, yield_per=LEAD_BATCH).execute(
            sa.select(LEADS.c.id).order_by(LEADS.c.id)
        )
        for part in result.partitions():
            with engine.begin() as connection:
                decayed |= _decay_batch(connection, config, part[0][0], part[-1][0], now, report)
    return decayed


def _decay_batch(
    connection: Connection,
    config: ScoringConfig,
    first_id: int,
    last_id: int,
    now: datetime,
    report: RescoreReport,
) -> set[int]:
    """Decay the leads with ids from `first_id` to `last_id` (one indexed range)."""
    s = SCORE_LEDGER.c
    cutoff = now - timedelta(days=config.decay.inactive_after_days)
    last = (
        sa.select(
            s.lead_id,
            sa.func.max(s.id).label("last_id"),
            sa.func.max(s.event_at).label("last_at"),
        )
        .where(
            s.lead_id.between(first_id, last_id),
            s.kind == ScoreKind.ENGAGEMENT,
            s.rule.not_in(NOT_ACTIVITY),
        )
        .group_by(s.lead_id)
        .subquery()
    )
    inner = SCORE_LEDGER.alias("inner")
    base = (
        sa.select(sa.func.coalesce(sa.func.sum(inner.c.points), 0))
        .where(
            inner.c.lead_id == last.c.lead_id,
            inner.c.kind != ScoreKind.FIT,
            inner.c.id <= last.c.last_id,
        )
        .scalar_subquery()
    )
    decayed = (
        sa.select(sa.func.coalesce(sa.func.sum(inner.c.points), 0))
        .where(
            inner.c.lead_id == last.c.lead_id,
            inner.c.kind == ScoreKind.DECAY,
            inner.c.id > last.c.last_id,
        )
        .scalar_subquery()
    )
    query = sa.select(last.c.lead_id, last.c.last_at, base, decayed).where(last.c.last_at < cutoff)
    rows = []
    for lead_id, last_at, base_points, decayed_points in connection.execute(query).all():
        delta = decay_delta(
            balance=int(base_points) + int(decayed_points),
            base=int(base_points),
            last_active=_aware(last_at),
            now=now,
            decay=config.decay,
        )
        if delta:
            rows.append(
                {
                    "lead_id": lead_id,
                    "kind": ScoreKind.DECAY,
                    "rule": "decay",
                    "points": delta,
                    "reason": (
                        f"inactive since {_aware(last_at):%Y-%m-%d}: engagement halves "
                        f"every {config.decay.half_life_days:g} days"
                    ),
                    "inbox_id": None,
                    "event_at": now,
                    "created_at": now,
                }
            )
    if rows:
        execute_many(connection, SCORE_LEDGER.insert(), rows)
    report.decay_rows += len(rows)
    return {row["lead_id"] for row in rows}


# -- score totals, stages, sales-ready ---------------------------------------------------


def breakdowns(connection: Connection, lead_ids: Iterable[int]) -> dict[int, list[tuple[str, int]]]:
    """Points per rule for each lead (decay as one line)."""
    s = SCORE_LEDGER.c
    result: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for lead_id, rule, points in connection.execute(
        sa.select(s.lead_id, s.rule, sa.func.sum(s.points))
        .where(s.lead_id.in_(list(lead_ids)))
        .group_by(s.lead_id, s.rule)
        .order_by(s.lead_id, s.rule)
    ).all():
        result[lead_id].append((rule, int(points)))
    return result


def _move_stages(
    connection: Connection,
    config: ScoringConfig,
    chunk: list[int],
    now: datetime,
    report: RescoreReport,
) -> list[tuple[int, str]]:
    """Move the chunk's leads to the stage their score reaches (the SQL gate holding
    back those it refuses); returns (lead, new stage) for each move. The moves and their
    stage changes are written with one statement each."""
    moves, changes = [], []
    c = LEADS.c
    for lead_id, stage, score, properties in connection.execute(
        sa.select(c.id, c.lifecycle_stage, c.score, c.properties)
        .where(
            among(connection.dialect.name, c.id, chunk),
            c.score >= config.thresholds.mql,
        )
        .order_by(c.id)
    ).all():
        held = sql_gate_mismatch(config, properties) if score >= config.thresholds.sql else None
        target = next_stage(stage, score, config.thresholds, gated=held is not None)
        if target is None:
            continue
        threshold = getattr(config.thresholds, target)
        reason = f"score {score} reached the {target} threshold {threshold}"
        if held is not None:
            reason += f" (not sql: {held})"
        changes.append(
            {
                "lead_id": lead_id,
                "from_stage": stage,
                "to_stage": target,
                "score": score,
                "reason": reason[:300],
                "changed_at": now,
            }
        )
        report.stage_changes[f"{stage}->{target}"] += 1
        moves.append((lead_id, target))
    if changes:
        bulk_update(
            connection,
            LEADS,
            [{"id": row["lead_id"], "lifecycle_stage": row["to_stage"]} for row in changes],
            shared={"updated_at": now},
        )
        execute_many(connection, STAGE_CHANGES.insert(), changes)
    return moves


def apply_scores_and_stages(
    engine: Engine,
    config: ScoringConfig,
    lead_ids: set[int],
    hand_raised: dict[tuple[int, str], datetime],
    now: datetime,
    report: RescoreReport,
) -> set[int]:
    """Set each lead's score to the sum of its ledger, move stages; returns moved leads."""
    moved: set[int] = set()
    ids = sorted(lead_ids)
    s = SCORE_LEDGER.c
    ready: list[tuple[int, str, datetime]] = []
    for start in range(0, len(ids), LEAD_BATCH):
        chunk = ids[start : start + LEAD_BATCH]
        with engine.begin() as connection:
            total = (
                sa.select(sa.func.coalesce(sa.func.sum(s.points), 0))
                .where(s.lead_id == LEADS.c.id)
                .scalar_subquery()
            )
            connection.execute(sa.update(LEADS).where(LEADS.c.id.in_(chunk)).values(score=total))
            report.rescored_leads += len(chunk)
            grade_leads(connection, config, chunk)
            for lead_id, target in _move_stages(connection, config, chunk, now, report):
                moved.add(lead_id)
                if target == LifecycleStage.SQL:
                    ready.append((lead_id, SQL_TRIGGER, now))
    ready.extend((lead_id, trigger, at) for (lead_id, trigger), at in sorted(hand_raised.items()))
    if ready:
        with engine.connect() as connection:
            scores = dict(
                connection.execute(
                    sa.select(LEADS.c.id, LEADS.c.score).where(
                        LEADS.c.id.in_([r[0] for r in ready])
                    )
                )
                .tuples()
                .all()
            )
            explained = breakdowns(connection, scores)
        report.sales_ready = [
            SalesReady(
                lead_id=lead_id,
                trigger=trigger,
                score=scores[lead_id],
                reasons=tuple(top_reasons(explained[lead_id])),
                at=at,
            )
            for lead_id, trigger, at in ready
            if lead_id in scores
        ]
    return moved
