"""The touch status transition table: total, consistent, and enforced by move_touches."""

from __future__ import annotations

import pytest

from leadops.models import FINAL_TOUCH_STATUSES, TouchStatus
from leadops.models.touch_states import (
    INITIAL_STATUS,
    TRANSITIONS,
    IllegalTransition,
    allowed_from,
    check,
    move_touches,
    sources,
)

S = TouchStatus


def test_the_table_is_total_and_names_only_statuses() -> None:
    assert set(TRANSITIONS) == set(TouchStatus)
    for source, targets in TRANSITIONS.items():
        assert targets <= set(TouchStatus)
        assert source not in targets  # no move to itself: a write that changes nothing


def test_every_status_is_reachable_from_a_new_touch() -> None:
    reached, frontier = {INITIAL_STATUS}, [INITIAL_STATUS]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(TouchStatus)


def test_what_left_never_goes_back_and_final_ends_stay() -> None:
    left = {S.SENT, S.DELIVERED, S.FAILED}
    for source in left:
        assert TRANSITIONS[source] <= {S.DELIVERED, S.FAILED}
    assert TRANSITIONS[S.FAILED] == TRANSITIONS[S.SKIPPED] == frozenset()
    for source in FINAL_TOUCH_STATUSES - {S.AMBIGUOUS}:  # only an operator re-queues a doubt
        assert S.PENDING not in TRANSITIONS[source]
    # a dead letter is entered only from a claim and left only by a retry
    assert allowed_from(S.DEAD_LETTER) == {S.CLAIMED}
    assert TRANSITIONS[S.DEAD_LETTER] == {S.PENDING, S.SKIPPED}
    # nothing is sent without being claimed and marked sending first
    assert allowed_from(S.SENDING) == {S.CLAIMED}
    assert allowed_from(S.CLAIMED) == {S.PENDING}


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.SENT, S.PENDING),
        (S.SENT, S.SKIPPED),
        (S.DELIVERED, S.SENT),
        (S.FAILED, S.PENDING),
        (S.SKIPPED, S.PENDING),
        (S.DEAD_LETTER, S.SENT),
        (S.PENDING, S.SENT),
        (S.AMBIGUOUS, S.SKIPPED),
    ],
)
def test_an_illegal_move_raises(source: S, target: S) -> None:
    with pytest.raises(IllegalTransition, match=f"from {source} to {target}"):
        check(source, target)
    with pytest.raises(IllegalTransition):
        move_touches(target, only=[source])


def test_the_guard_is_in_the_statement() -> None:
    sql = str(move_touches(S.PENDING, only=[S.DEAD_LETTER]).compile())
    assert "touches.status IN" in sql
    assert sources(S.DELIVERED) == sorted({S.SENDING, S.SENT, S.AMBIGUOUS})
    with pytest.raises(ValueError, match="'paused' is not a valid TouchStatus"):
        allowed_from("paused")
