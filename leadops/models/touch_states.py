"""The one table of touch status transitions, and the guarded UPDATE every writer uses.

`TRANSITIONS` maps each status to the statuses a touch may move to from it, with who
makes the move. Every statement that changes a touch's status is built by `move_touches`
(or guarded by `allowed_from`), whose WHERE keeps only rows in a status the table allows:
an illegal move changes nothing, and asking for one raises IllegalTransition.

A later state (paused, a variant, a goal reached) is one new TouchStatus member in
leadops.models.vocab plus its row here, and its moves in the rows of the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from leadops.models.nurture import TOUCHES
from leadops.models.vocab import TouchStatus

S = TouchStatus

# from status -> the statuses it may move to (who moves it)
TRANSITIONS: dict[TouchStatus, frozenset[TouchStatus]] = {
    # planned and due (or held until not_before): the dispatcher claims it; suppression,
    # leaving nurture or an escalation skips it.
    S.PENDING: frozenset({S.CLAIMED, S.SKIPPED}),
    # taken by a dispatcher: held (pending again), refused by the policy (skipped), set
    # aside (dead_letter), about to leave (sending); a stale claim is released (pending).
    S.CLAIMED: frozenset({S.PENDING, S.SENDING, S.SKIPPED, S.DEAD_LETTER}),
    # on the wire: the provider's answer (sent, failed, ambiguous, or pending when it
    # provably did not leave); a stopped dispatcher's row is proven sent or ambiguous; a
    # provider callback may arrive first (delivered, failed).
    S.SENDING: frozenset({S.SENT, S.PENDING, S.FAILED, S.AMBIGUOUS, S.DELIVERED}),
    # accepted by the channel: callbacks say delivered, or bounced (failed).
    S.SENT: frozenset({S.DELIVERED, S.FAILED}),
    # a bounce may follow a delivery report.
    S.DELIVERED: frozenset({S.FAILED}),
    # in doubt: an operator (sent, or pending again) or a provider callback settles it.
    S.AMBIGUOUS: frozenset({S.SENT, S.PENDING, S.DELIVERED, S.FAILED}),
    S.FAILED: frozenset(),
    S.SKIPPED: frozenset(),
    # set aside: only `leadops deadletters retry` moves it (pending, or skipped when the
    # lead left the sequence meanwhile).
    S.DEAD_LETTER: frozenset({S.PENDING, S.SKIPPED}),
}

# What a new touch row starts as (the planner inserts it). A step its rules say not to
# send (a failed condition, a wait that timed out: leadops.delivery.conditions) is
# inserted as SKIPPED_AT_PLANNING instead, final at once, with its reason code.
INITIAL_STATUS = S.PENDING
SKIPPED_AT_PLANNING = S.SKIPPED


class IllegalTransition(ValueError):
    """A touch status move the transition table does not allow."""


def allowed_from(target: str) -> frozenset[TouchStatus]:
    """The statuses a touch may move to `target` from."""
    status = TouchStatus(target)
    return frozenset(source for source, targets in TRANSITIONS.items() if status in targets)


def check(source: str, target: str) -> None:
    """Raise IllegalTransition unless a touch may move from `source` to `target`."""
    if TouchStatus(target) not in TRANSITIONS[TouchStatus(source)]:
        raise IllegalTransition(f"a touch cannot move from {source} to {target}")


def sources(target: str, only: Iterable[str] | None = None) -> list[TouchStatus]:
    """The statuses a writer moves to `target` from: `only` (each checked), else all the
    table allows."""
    if only is None:
        return sorted(allowed_from(target))
    chosen = [TouchStatus(source) for source in only]
    for source in chosen:
        check(source, target)
    return chosen


def move_touches(
    target: str,
    *where: sa.ColumnElement[bool],
    only: Iterable[str] | None = None,
    **values: Any,
) -> sa.Update:
    """UPDATE touches SET status = target (and `values`) WHERE `where` and the row's
    status may move to `target` (restricted to `only`, each checked against the table)."""
    allowed = sources(target, only)
    return (
        sa.update(TOUCHES)
        .where(TOUCHES.c.status.in_(allowed), *where)
        .values(status=TouchStatus(target), **values)
    )
