"""Reads the command stream through the consumer group, in its own thread: its own pending
entries first (commands that arrived while the daemon was down or restarting, or that it
had not acknowledged when it died), then new ones. Entries go to the reactor's queue; the
reactor acknowledges each one only after its result is written."""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from loguru import logger

from sidecar.core.errors import StoreUnavailable
from sidecar.core.ports import StorePort
from sidecar.core.types import Incoming


class CommandReader:
    """`run` is the thread's body, started by the supervisor. Redis being away is waited
    out here (a transient error); anything else (a wrong-type key: `ResponseError`) ends
    `run` with the error, and the supervisor logs it and restarts it with backoff."""

    def __init__(self, store: StorePort, sink: Callable[[Incoming], None], block_ms: int = 1000):
        self.store = store
        self.sink = sink
        self.block_ms = block_ms

    def run(self, stop: threading.Event) -> None:
        pending = True  # after every (re)connect: re-read what we hold but did not ack
        while not stop.is_set():
            try:
                if pending:
                    self.store.ensure_group()
                entries = self.store.read_commands(pending, self.block_ms)
            except (StoreUnavailable, redis.ConnectionError, redis.TimeoutError) as exc:
                logger.debug("command stream unavailable: {}", exc)
                pending = True
                stop.wait(1.0)
                continue
            for entry_id, fields in entries:
                self.sink(Incoming(entry_id, fields))
            # pending entries are handed over once; the reactor acknowledges them
            pending = False
