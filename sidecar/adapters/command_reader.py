"""Reads the command stream through the consumer group, in its own thread: its own pending
entries first (commands that arrived while the daemon was down or restarting, or that it
had not acknowledged when it died), then new ones. Entries go to the reactor's queue; the
reactor acknowledges each one only after its result is written."""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from loguru import logger

from sidecar.adapters.store import Store, StoreUnavailable
from sidecar.core.types import Incoming


class CommandReader:
    def __init__(self, store: Store, sink: Callable[[Incoming], None], block_ms: int = 1000):
        self.store = store
        self.sink = sink
        self.block_ms = block_ms
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=self.block_ms / 1000 + 3)

    def _run(self) -> None:
        pending = True  # after every (re)connect: re-read what we hold but did not ack
        while not self._stop.is_set():
            try:
                if pending:
                    self.store.ensure_group()
                entries = self.store.read_commands(pending, self.block_ms)
            except (StoreUnavailable, redis.RedisError) as exc:
                logger.debug("command stream unavailable: {}", exc)
                pending = True
                self._stop.wait(1.0)
                continue
            if pending and not entries:
                pending = False
            for entry_id, fields in entries:
                self.sink(Incoming(entry_id, fields))
            if pending:
                # pending entries are handed over once; wait for the reactor before re-reading
                pending = False
