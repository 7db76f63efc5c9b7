"""Delivery from git: the `git` thread keeps the workspace at the newest commit of the
followed branch, and hands the files a move changed to the reactor, which rebuilds and
rolls out exactly the services they belong to (the content hashes decide, as for an edit).

New commits arrive two ways, per `git_updates`:
- webhooks: the HTTP server verifies a push and writes it to the hub stream (shared by
  every sidecar on the Redis); this thread reads the hub and acts on the pushes for its
  remote and branch. One public endpoint serves any number of sidecars.
- polling: `git ls-remote` every `git_poll_s` (backed off after failures).

One update runs at a time (this thread does it), and pushes that arrive meanwhile are
read afterwards together: only the branch's newest commit is fetched, so at most one
update is pending and it is the latest. An update to the commit the workspace is already
at does nothing (deliveries are idempotent on (repository, branch, commit)).

A remote that is down or refuses the credentials is reported (event `git-failed`, the
`git` hash) and retried; nothing running is touched. A refused update (uncommitted
changes, local commits, a force-push not allowed) is reported with its reason."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

from loguru import logger

from sidecar.core.delivery import (
    Decision,
    Move,
    Situation,
    decide,
    local_commits_base,
    next_poll_wait,
)
from sidecar.core.errors import GitError, StoreUnavailable
from sidecar.core.hooks import matches, push_from_fields
from sidecar.core.ports import Clock, StorePort
from sidecar.core.types import GitMoved
from sidecar.settings import Settings, redact_url

HUB_BLOCK_S = 1.0  # the longest wait on the hub: how soon the thread sees the stop


class GitPort(Protocol):
    """What the delivery needs of git (sidecar.adapters.git.Git)."""

    def is_repository(self) -> bool: ...
    def clone(self) -> str: ...
    def remote_head(self) -> str | None: ...
    def fetch(self) -> str: ...
    def head(self) -> str: ...
    def tracking(self) -> str | None: ...
    def applied(self) -> str | None: ...
    def mark_applied(self, commit: str) -> None: ...
    def dirty(self) -> list[str]: ...
    def is_ancestor(self, ancestor: str, descendant: str) -> bool: ...
    def count(self, exclude: str, include: str) -> int: ...
    def changed_paths(self, old: str, new: str) -> list[str]: ...
    def fast_forward(self, commit: str) -> None: ...
    def reset_to(self, commit: str) -> None: ...
    def commit_subject(self, commit: str) -> str: ...


Event = Callable[..., None]


class Delivery:
    def __init__(
        self,
        settings: Settings,
        git: GitPort,
        store: StorePort,
        post: Callable[[GitMoved], None],
        event: Event,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.git = git
        self.store = store
        self.post = post
        self.event = event
        self.clock = clock
        self.remote = settings.git_remote.get_secret_value()
        self.branch = settings.git_branch
        self.shown_remote = redact_url(self.remote)
        self.head = ""  # the workspace's commit, as this thread last saw it
        self.failures = 0  # failed looks at the remote in a row (the poll backs off)
        self._hub_after: str | None = None
        self._wake = threading.Event()
        # set while the workspace is being moved, until the reactor has the move: the
        # reactor holds the watcher's batch meanwhile (its events are the same files, and
        # released early they would start the build without knowing the commit)
        self.moving = threading.Event()

    # --- before the project loads ----------------------------------------------------------
    def prepare(self) -> str:
        """Clone into an empty workspace; the commit the workspace is at ('' when git
        cannot say: reported, and the daemon runs on with what is on disk)."""
        try:
            if not self.git.is_repository():
                self.head = self.git.clone()
                logger.info("git: cloned {} ({}) at {}", self.shown_remote, self.branch, self.head)
            else:
                self.head = self.git.head()
        except GitError as exc:
            logger.error("git: {}", exc)
            self._record(last_result="failed", last_error=str(exc))
            self.event("git-failed", error=str(exc))
            return ""
        self._record(commit=self.head, subject=self._subject(self.head), last_result="ready")
        return self.head

    # --- the thread ------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        hooks = self.settings.git_updates in ("webhook", "both")
        polls = self.settings.git_updates in ("poll", "both")
        self.update("start-up")  # whatever was pushed while the sidecar was not running
        next_poll = self.clock.monotonic() + self._poll_wait()
        while not stop.is_set():
            wait = max(0.0, next_poll - self.clock.monotonic()) if polls else HUB_BLOCK_S
            wanted = self._read_hub(min(wait, HUB_BLOCK_S), stop) if hooks else None
            if not hooks:
                self._wake.wait(wait)
                self._wake.clear()
            if stop.is_set():
                return
            if wanted is not None:
                self.update(wanted)
            if polls and self.clock.monotonic() >= next_poll:
                self.poll()
                next_poll = self.clock.monotonic() + self._poll_wait()

    def interrupt(self) -> None:
        self._wake.set()

    def _read_hub(self, wait_s: float, stop: threading.Event) -> str | None:
        """Read the hub (up to `wait_s`); the reason for an update when a push for this
        remote and branch, to a commit the workspace is not at, arrived."""
        try:
            if self._hub_after is None:
                self._hub_after = self.store.newest_entry(self.store.keys.hub)
            entries = self.store.read_entries(
                self.store.keys.hub, self._hub_after, int(wait_s * 1000)
            )
        except StoreUnavailable:
            stop.wait(min(wait_s, 1.0) or 0.1)
            return None
        wanted = None
        for entry_id, fields in entries:
            self._hub_after = entry_id
            push = push_from_fields(fields)
            if push is None or matches(push, self.remote, self.branch) is not None:
                continue
            if push.deleted or push.after == self.head:
                continue
            wanted = f"push {push.after[:12]} ({push.provider})"
        return wanted

    def poll(self) -> None:
        try:
            remote = self.git.remote_head()
        except GitError as exc:
            self._failed(exc, "poll")
            return
        self._checked()
        if remote is None:
            self._failed(GitError(f"branch {self.branch} not found on {self.shown_remote}"), "poll")
        elif remote != self.head:
            self.update("poll")

    # --- one update --------------------------------------------------------------------------
    def update(self, reason: str) -> Decision | None:
        """Fetch the branch and move the workspace to it when that is safe; None when git
        failed (reported)."""
        try:
            return self._update(reason)
        finally:
            self.moving.clear()  # whatever happened: the watcher's batches flow again

    def _update(self, reason: str) -> Decision | None:
        t0 = self.clock.monotonic()
        try:
            previous = self.git.applied()  # not the last fetch: that may be a refused rewrite
            fetched = self.git.fetch()
            head = self.git.head()
            moved = head != fetched
            descends = moved and self.git.is_ancestor(head, fetched)
            situation = Situation(
                head=head,
                fetched=fetched,
                dirty=tuple(self.git.dirty()) if moved else (),
                descends=descends,
                # commits of HEAD the remote never had: only possible when it does not descend
                local_commits=(
                    self.git.count(local_commits_base(previous, fetched), head)
                    if moved and not descends
                    else 0
                ),
            )
            decision = decide(situation, self.branch, self.settings.git_allow_force)
            moves = decision.move in (Move.FAST_FORWARD, Move.RESET)
            if moves:
                self.moving.set()
            if decision.move is Move.FAST_FORWARD:
                self.git.fast_forward(fetched)
            elif decision.move is Move.RESET:
                self.git.reset_to(fetched)
            if decision.move is not Move.REFUSED:
                self.git.mark_applied(fetched)
            paths = self.git.changed_paths(head, fetched) if moves else []
        except GitError as exc:
            self._failed(exc, reason)
            return None
        return self._moved(decision, head, fetched, paths, reason, t0)

    def _moved(
        self,
        decision: Decision,
        head: str,
        fetched: str,
        paths: list[str],
        reason: str,
        t0: float,
    ) -> Decision:
        self._checked()
        self.head = head
        if decision.move is Move.UP_TO_DATE:
            self._record(last_result="up-to-date", last_error="")
            return decision
        if decision.move is Move.REFUSED:
            logger.error("git: update to {} refused: {}", fetched[:12], decision.reason)
            self._record(last_result="refused", last_error=decision.reason, refused=fetched)
            self.event("git-refused", commit=fetched, error=decision.reason, reason=reason)
            return decision
        self.head = fetched
        subject = self._subject(fetched)
        seconds = self.clock.monotonic() - t0
        logger.info(
            "git: {} -> {} ({}) on {}: {} files changed, {:.2f}s{}",
            head[:12],
            fetched[:12],
            subject,
            reason,
            len(paths),
            seconds,
            f"; {decision.reason}" if decision.reason else "",
        )
        self._record(
            commit=fetched,
            subject=subject,
            updated_at=f"{self.clock.time():.3f}",
            last_result="updated",
            last_error="",
        )
        self.post(GitMoved(head, fetched, tuple(paths), subject, reason))
        self.event(
            "git-updated",
            commit=fetched,
            previous=head,
            subject=subject,
            files=len(paths),
            reason=reason,
            seconds=f"{seconds:.3f}",
            **({"detail": decision.reason} if decision.reason else {}),
        )
        return decision

    # --- bookkeeping --------------------------------------------------------------------------
    def _poll_wait(self) -> float:
        return next_poll_wait(self.settings.git_poll_s, self.failures)

    def _checked(self) -> None:
        if self.failures:
            logger.info("git: {} reachable again", self.shown_remote)
        self.failures = 0
        self._record(last_checked_at=f"{self.clock.time():.3f}")

    def _failed(self, exc: GitError, reason: str) -> None:
        self.failures += 1
        wait = self._poll_wait()
        logger.error("git: {} failed ({}): {}; next try in {:g}s", reason, self.failures, exc, wait)
        self._record(last_result="failed", last_error=str(exc))
        if self.failures == 1:  # an event when it starts failing, not on every retry
            self.event("git-failed", error=str(exc), reason=reason)

    def _subject(self, commit: str) -> str:
        try:
            return self.git.commit_subject(commit)
        except GitError:
            return ""

    def _record(self, **fields: str) -> None:
        base = {"remote": self.shown_remote, "branch": self.branch}
        with suppress(StoreUnavailable):  # written again with the next look at the remote
            self.store.record_git({**base, **fields})
