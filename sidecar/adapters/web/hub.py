"""One reader of the daemon's events stream for every live consumer of the HTTP server: the
event streams (SSE), the long-polls waiting for a deploy, the commands waiting for their
result. Whatever the number of clients, the server holds one blocking XREAD.

A subscription is a bounded buffer. A client that cannot keep up overflows it and its
stream is ended: it resumes from Redis with `Last-Event-ID`, so nothing is lost and no
memory grows. Waiters only use the hub to wake early; what they answer comes from Redis."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

import redis.asyncio as aioredis
from loguru import logger
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sidecar.core.keys import Keys

Entry = tuple[str, dict[str, str]]  # (stream id, fields)
Want = Callable[[Mapping[str, str]], bool]

STREAM_ID = re.compile(r"^[0-9]{1,20}(-[0-9]{1,20})?$")
# waits after a failed read, in seconds (the last repeats)
BACKOFFS = (0.5, 1.0, 2.0, 5.0)


def parse_id(text: str) -> tuple[int, int]:
    """A stream id (`1700000000000-3`, or `1700000000000`) as a comparable pair."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Subscription:
    def __init__(self, limit: int, want: Want | None) -> None:
        self.limit = limit
        self.want = want
        self.items: deque[Entry] = deque()
        self.overflowed = False
        self._wake = asyncio.Event()

    def offer(self, entry: Entry) -> None:
        if self.want is not None and not self.want(entry[1]):
            return
        if len(self.items) >= self.limit:
            self.overflowed = True
        else:
            self.items.append(entry)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def take(self, timeout: float) -> list[Entry]:
        """What arrived (waiting up to `timeout` seconds for something); [] on timeout."""
        if not self.items and not self.overflowed:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        items = list(self.items)
        self.items.clear()
        return items


class EventHub:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Callable[[], Keys],
        block_ms: int = 5000,
        limit: int = 1000,
    ) -> None:
        self.client = client
        self.keys = keys
        self.block_ms = block_ms
        self.limit = limit
        self.subscribers: set[Subscription] = set()
        self.connected = False

    def subscribe(self, want: Want | None = None) -> Subscription:
        sub = Subscription(self.limit, want)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    async def newest_id(self, key: str) -> str:
        newest: Any = await self.client.xrevrange(key, "+", "-", count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def run(self) -> None:
        """Follow the stream until cancelled. Redis away is waited out with backoff (and the
        read resumes where it stopped); any other error ends `run` with it."""
        key, last, failures = "", "0-0", 0
        while True:
            try:
                current = self.keys().events
                if current != key:  # first read, or the project got its compose name
                    last, key = await self.newest_id(current), current
                resp: Any = await self.client.xread({key: last}, count=500, block=self.block_ms)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self.connected or failures == 0:
                    logger.warning("http: events stream unreadable ({}); retrying", exc)
                self.connected = False
                await asyncio.sleep(BACKOFFS[min(failures, len(BACKOFFS) - 1)])
                failures += 1
                continue
            if not self.connected and failures:
                logger.info("http: events stream readable again")
            self.connected, failures = True, 0
            for _stream, entries in resp or []:
                for entry_id, fields in entries:
                    last = str(entry_id)
                    self.broadcast((last, {str(k): str(v) for k, v in fields.items()}))

    def wake_all(self) -> None:
        """The server is stopping: every waiting consumer looks up now."""
        for sub in list(self.subscribers):
            sub.wake()

    def broadcast(self, entry: Entry) -> None:
        for sub in list(self.subscribers):
            sub.offer(entry)
