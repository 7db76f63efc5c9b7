"""Batching of file events: a quiet window with a maximum wait. Pure; the caller owns the clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Debouncer:
    """Collects paths until no new one arrived for `quiet` seconds, or `max_wait` seconds
    passed since the first one of the batch (so a process that never stops writing cannot
    starve the build). `hold` (e.g. a git operation in progress) postpones the release
    without limit: releasing half a checkout would build a tree that never existed."""

    quiet: float
    max_wait: float
    _paths: set[str] = field(default_factory=set)
    _first: float | None = None
    _last: float | None = None

    def add(self, paths: Iterable[str], now: float) -> None:
        added = False
        for p in paths:
            self._paths.add(p)
            added = True
        if not added:
            return
        if self._first is None:
            self._first = now
        self._last = now

    @property
    def pending(self) -> int:
        return len(self._paths)

    def deadline(self) -> float | None:
        """When the current batch becomes due (None when there is no batch)."""
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.quiet, self._first + self.max_wait)

    def take(self, now: float, hold: bool = False) -> set[str] | None:
        """The batch, if it is due and not held; it is then cleared."""
        due = self.deadline()
        if due is None or now < due or hold:
            return None
        batch, self._paths = self._paths, set()
        self._first = self._last = None
        return batch
