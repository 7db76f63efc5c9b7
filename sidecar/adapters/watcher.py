"""The file-watch adapter: one inotify instance (watchdog's InotifyFD), one watch per
directory that can matter. Unlike watchdog's recursive observer it never descends into
pruned directories (`.git`, `node_modules`, fully dockerignored trees), so they cost no
inotify watch. Changed paths go to a sink callable; the daemon queues them."""

from __future__ import annotations

import errno
import operator
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from functools import reduce

from loguru import logger
from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchDescriptor,
)
from watchdog.observers.inotify_c import InotifyConstants as C

Sink = Callable[[list[str]], None]
OVERFLOW = "\0overflow"  # sentinel path: events were lost, rescan everything

_MASK = Mask(
    reduce(
        operator.or_,
        (
            C.IN_CLOSE_WRITE,
            C.IN_MODIFY,
            C.IN_ATTRIB,
            C.IN_CREATE,
            C.IN_DELETE,
            C.IN_MOVED_FROM,
            C.IN_MOVED_TO,
            C.IN_DELETE_SELF,
            C.IN_MOVE_SELF,
            C.IN_DONT_FOLLOW,
            C.IN_ONLYDIR,
            C.IN_EXCL_UNLINK,
        ),
    )
)
_CB_ID = CallbackId(0x5C)


class WatchLimitError(Exception):
    """The kernel's inotify watch limit is too low for this workspace."""

    def __init__(self, needed: int) -> None:
        limit = _read_limit()
        super().__init__(
            f"out of inotify watches: this workspace needs about {needed} (one per watched "
            f"directory) but fs.inotify.max_user_watches is {limit}, shared by every process "
            "of the user. Raise it with "
            f"`sysctl -w fs.inotify.max_user_watches={max(needed * 2, 524288)}` "
            "(persist it in /etc/sysctl.d/), or ignore big directories with SIDECAR_IGNORE."
        )
        self.needed = needed


def _read_limit() -> str:
    """The effective limit: the user namespace's own (/proc/sys/user) may be lower."""
    values = []
    for path in ("/proc/sys/fs/inotify/max_user_watches", "/proc/sys/user/max_inotify_watches"):
        try:
            with open(path) as f:
                values.append(int(f.read().strip()))
        except (OSError, ValueError):
            continue
    return str(min(values)) if values else "unknown"


class TreeWatcher:
    def __init__(self, roots: Iterable[str], prune: Callable[[str], bool], sink: Sink) -> None:
        self.roots = list(roots)
        self.prune = prune
        self.sink = sink
        self._fd = InotifyFD()
        self._dirs: dict[WatchDescriptor, str] = {}
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        """The inotify reader thread (watchdog's) still runs: the supervisor checks it."""
        return self._fd.is_alive()

    @property
    def watch_count(self) -> int:
        return len(self._dirs)

    def watched_dirs(self) -> list[str]:
        with self._lock:
            return sorted(self._dirs.values())

    def start(self) -> None:
        self._fd.start()
        for root in self.roots:
            self._add_tree(root, report=False)
        logger.info("watching {} directories under {}", self.watch_count, ", ".join(self.roots))

    def stop(self) -> None:
        self._fd.stop()

    def set_prune(self, prune: Callable[[str], bool]) -> None:
        """The project model changed: watch newly relevant directories (old ones stay)."""
        self.prune = prune
        for root in self.roots:
            self._add_tree(root, report=False)

    def _add_tree(self, top: str, report: bool) -> None:
        """Watch `top` and every non-pruned directory below it. With `report`, also report
        the files found: they may have been written before the watch existed."""
        stack, found, pending = [top], [], 0
        while stack:
            current = stack.pop()
            if not self._watch(current):
                continue
            pending += 1
            try:
                entries = list(os.scandir(current))
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if not self.prune(entry.path):
                        stack.append(entry.path)
                elif report:
                    found.append(entry.path)
        if found:
            self.sink(found)

    def _watch(self, path: str) -> bool:
        try:
            with warnings.catch_warnings():
                # re-adding a known directory (after a move) re-registers the same callback
                warnings.simplefilter("ignore", RuntimeWarning)
                wd = self._fd.add_callback(os.fsencode(path), _MASK, self, _CB_ID)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise WatchLimitError(max(self._count_dirs(), self.watch_count + 1)) from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
                return False
            raise
        with self._lock:
            self._dirs[wd] = path
        return True

    def _count_dirs(self) -> int:
        count = 0
        stack = list(self.roots)
        while stack:
            current = stack.pop()
            count += 1
            try:
                stack.extend(
                    e.path
                    for e in os.scandir(current)
                    if e.is_dir(follow_symlinks=False) and not self.prune(e.path)
                )
            except OSError:
                continue
        return count

    # --- watchdog's WatchCallback protocol (called on the InotifyFD thread) -------------
    def on_event(self, event: InotifyEvent) -> None:
        with self._lock:
            parent = self._dirs.get(event.wd)
        if parent is None or event.is_delete_self or event.is_move_self:
            return
        path = os.path.join(parent, os.fsdecode(event.name)) if event.name else parent
        if event.is_directory:
            if (event.is_create or event.is_moved_to) and not self.prune(path):
                try:
                    self._add_tree(path, report=True)
                except WatchLimitError as exc:
                    logger.error("{}", exc)
            if event.is_delete or event.is_moved_from or event.is_moved_to:
                self.sink([path])  # files below it are gone (or arrived): let the core look
            return
        self.sink([path])

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        with self._lock:
            self._dirs.pop(wd, None)

    def on_queue_overflow(self) -> None:
        logger.warning("inotify queue overflowed; a full rescan follows")
        self.sink([OVERFLOW])
