"""Delivery from git, decided without I/O: what to do with the workspace once the branch has
been fetched, and when to look at the remote next.

The workspace is the user's: it is never overwritten. An update is refused (and reported
with the reason) when the working tree has uncommitted changes, or when HEAD holds commits
the remote branch does not have. A branch whose history was rewritten (a force-push: the
new commit does not descend from what the sidecar deployed) is followed only when the
setting allows it, by `git reset --keep`, which itself refuses to lose local changes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# the longest wait between two polls after failures (seconds)
POLL_BACKOFF_MAX_S = 600.0
_LISTED = 5  # dirty paths named in a refusal


class Move(Enum):
    UP_TO_DATE = "up-to-date"
    FAST_FORWARD = "fast-forward"
    RESET = "reset"  # a followed force-push
    REFUSED = "refused"


@dataclass(frozen=True)
class Situation:
    """What git says after the fetch."""

    head: str  # the workspace's HEAD
    fetched: str  # the branch's newest commit, just fetched
    dirty: tuple[str, ...]  # paths with uncommitted changes
    descends: bool  # `fetched` descends from `head` (a fast-forward)
    local_commits: int  # commits of HEAD the remote never had (see `local_commits_base`)


@dataclass(frozen=True)
class Decision:
    move: Move
    reason: str = ""


def decide(s: Situation, branch: str, allow_force: bool) -> Decision:
    if s.head == s.fetched:
        return Decision(Move.UP_TO_DATE)
    if s.dirty:
        listed = ", ".join(s.dirty[:_LISTED])
        more = f" (+{len(s.dirty) - _LISTED} more)" if len(s.dirty) > _LISTED else ""
        return Decision(Move.REFUSED, f"the workspace has uncommitted changes: {listed}{more}")
    if s.descends:
        return Decision(Move.FAST_FORWARD)
    if s.local_commits > 0:
        n = s.local_commits
        return Decision(
            Move.REFUSED,
            f"the workspace has {n} local commit{'s' if n != 1 else ''} not on {branch}",
        )
    if allow_force:
        return Decision(Move.RESET, f"history of {branch} rewritten (force-push): followed")
    return Decision(
        Move.REFUSED,
        f"history of {branch} rewritten (force-push); set git_allow_force to follow it",
    )


def local_commits_base(previous: str | None, fetched: str) -> str:
    """Which commit HEAD's own commits are counted against: the branch as the sidecar last
    fetched it (a force-push since leaves HEAD with none of its own), or, before any fetch
    of the sidecar's, the branch as it is now."""
    return previous or fetched


def next_poll_wait(interval_s: float, failures: int) -> float:
    """Seconds to the next poll: the interval, doubled after each failure in a row, at most
    POLL_BACKOFF_MAX_S (never less than the interval)."""
    if failures <= 0:
        return interval_s
    backed_off: float = interval_s * 2.0 ** min(failures, 20)
    return max(interval_s, min(backed_off, POLL_BACKOFF_MAX_S))
