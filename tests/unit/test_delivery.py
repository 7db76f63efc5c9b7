"""Delivery from git: what happens to the workspace after a fetch, as a table."""

from __future__ import annotations

import pytest

from sidecar.core.delivery import (
    POLL_BACKOFF_MAX_S,
    Move,
    Situation,
    decide,
    local_commits_base,
    next_poll_wait,
)

A, B = "a" * 40, "b" * 40
DECISIONS: list[tuple[Situation, bool, Move, str]] = [
    (Situation(A, A, (), False, 0), False, Move.UP_TO_DATE, ""),
    # a dirty tree is never overwritten, even for a fast-forward
    (Situation(A, B, ("web/index.html",), True, 0), False, Move.REFUSED, "uncommitted changes"),
    (Situation(A, B, tuple(f"f{i}" for i in range(8)), True, 0), True, Move.REFUSED, "(+3 more)"),
    (Situation(A, B, (), True, 0), False, Move.FAST_FORWARD, ""),
    (Situation(A, B, (), False, 2), True, Move.REFUSED, "2 local commits not on main"),
    (Situation(A, B, (), False, 1), False, Move.REFUSED, "1 local commit not on main"),
    (Situation(A, B, (), False, 0), False, Move.REFUSED, "set git_allow_force"),
    (Situation(A, B, (), False, 0), True, Move.RESET, "followed"),
]


@pytest.mark.parametrize(("situation", "force", "move", "reason"), DECISIONS)
def test_what_an_update_does(situation: Situation, force: bool, move: Move, reason: str) -> None:
    decision = decide(situation, "main", force)
    assert decision.move is move
    assert reason in decision.reason
    if move is Move.UP_TO_DATE or move is Move.FAST_FORWARD:
        assert decision.reason == ""


def test_local_commits_are_counted_against_what_the_sidecar_fetched_last() -> None:
    assert local_commits_base(A, B) == A  # a force-push since: HEAD (at A) has none of its own
    assert local_commits_base(None, B) == B  # never fetched by the sidecar: the branch now


@pytest.mark.parametrize(
    ("interval", "failures", "wait"),
    [
        (60.0, 0, 60.0),
        (60.0, 1, 120.0),
        (60.0, 3, 480.0),
        (60.0, 4, POLL_BACKOFF_MAX_S),
        (60.0, 1000, POLL_BACKOFF_MAX_S),
        (3600.0, 2, 3600.0),  # never below the interval itself
        (1.0, 2, 4.0),
    ],
)
def test_the_poll_backs_off_after_failures(interval: float, failures: int, wait: float) -> None:
    assert next_poll_wait(interval, failures) == wait
