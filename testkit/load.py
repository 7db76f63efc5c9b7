"""Bounded request streams through a Traefik on loopback: a closed loop for tests (one request
after the other) and an open loop for benchmarks (a request due every 1/rate s whatever the
earlier ones do)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter

from testkit.http import Entry


@dataclass
class Sample:
    at: float  # when the request was sent (unix time), not when its answer or error came
    status: int
    body: str
    seconds: float = 0.0  # from sending to the answer (or the error)


class Load:
    """A bounded, steady stream of requests through Traefik (loopback only). Open loop: a
    request is due every 1/rate s and is sent from a small pool of threads whatever the earlier
    ones are doing, so one hanging until its timeout (sent to an instance that was just killed,
    whose SYN goes nowhere) neither pauses the stream nor hides what happens meanwhile. Each
    sample carries the time its request was sent: `failures(since=t)` are the requests sent at
    or after t that failed, not older ones that gave up after t. (The closed loop it replaced
    stamped a request when it ended: one that hung 2 s looked like a failure after the
    replacement already served, the flaky kill test of issue 10.)"""

    def __init__(
        self,
        traefik: Entry,
        host: str,
        rate: float = 50.0,
        max_seconds: float = 600.0,
        workers: int = 8,
    ) -> None:
        self.traefik = traefik
        self.host = host
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="load")
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pool.shutdown(wait=True)  # every request sent has its answer (or its timeout)
        with self._lock:
            self.samples.sort(key=attrgetter("at"))

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._pool.submit(self._one)
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self) -> None:
        sent, t0 = time.time(), time.monotonic()
        status, body = self.traefik.get(self.host)
        sample = Sample(sent, status, body, time.monotonic() - t0)
        with self._lock:
            self.samples.append(sample)

    def failures(self, since: float = 0.0) -> list[Sample]:
        with self._lock:
            failed = [s for s in self.samples if s.at >= since and s.status != 200]
        return sorted(failed, key=attrgetter("at"))

    def bodies(self, since: float) -> set[str]:
        with self._lock:
            return {s.body for s in self.samples if s.at >= since}


@dataclass(frozen=True)
class Request:
    """One request of an open-loop stream."""

    sent: float  # unix time the request was started
    done: float  # unix time it completed (or failed)
    status: int  # 0: no HTTP answer (refused, reset, timeout)
    body: str  # the answer, or `<exception type>: <message>`

    @property
    def ok(self) -> bool:
        return self.status == 200


class OpenLoad:
    """Steady GETs through one Traefik (loopback only), a fresh connection each, bounded in
    time.

    Open loop: a request is started every 1/rate s whatever the earlier ones are doing (they
    run in a pool), so a request hanging until its timeout neither slows the load down nor
    hides the failures of the requests behind it (a closed loop would send fewer requests, and
    count fewer failures, on whichever path hangs). At most 2 x rate x timeout + 8 requests
    are in flight; a tick finding them all busy is counted in `skipped` (should stay 0)."""

    def __init__(
        self,
        entry: Entry,
        host: str,
        rate: float = 50.0,
        max_seconds: float = 900.0,
        timeout: float = 1.0,
    ) -> None:
        self.entry = entry
        self.host = host
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.samples: list[Request] = []
        self.late_ticks = 0  # ticks started more than one interval late (an overloaded host)
        self.skipped = 0
        self.started = 0.0
        self.stopped = 0.0
        self._lock = threading.Lock()
        self._pending: dict[int, float] = {}  # request number -> unix time it was due
        self._stop = threading.Event()
        workers = int(rate * timeout * 2) + 8
        self._slots = threading.Semaphore(workers)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"load-{entry.web_port}")
        self._thread = threading.Thread(target=self._run, name="open-load", daemon=True)

    def __enter__(self) -> OpenLoad:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.started = time.time()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.stopped = time.time()

    def _one(self, n: int) -> None:
        sent = time.time()
        try:
            status, body = self.entry.get(self.host, timeout=self.timeout)
        except Exception as exc:  # Entry.get maps socket/HTTP errors; anything else too
            status, body = 0, f"{type(exc).__name__}: {exc}"
        finally:
            self._slots.release()
            with self._lock:
                self._pending.pop(n, None)
        with self._lock:
            self.samples.append(Request(sent, time.time(), status, body))

    def _run(self) -> None:
        t0 = time.monotonic()
        next_at = t0
        n = 0
        while not self._stop.is_set() and time.monotonic() - t0 < self.max_seconds:
            if time.monotonic() - next_at > self.interval:
                self.late_ticks += 1
            if self._slots.acquire(blocking=False):
                with self._lock:
                    self._pending[n] = time.time()
                self._pool.submit(self._one, n)
                n += 1
            else:
                self.skipped += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def complete(self, before: float) -> None:
        """Wait until every request due before `before` has its answer (at most the request
        timeout, plus a margin), so a window is analysed with all of its requests."""
        deadline = time.monotonic() + self.timeout + 2.0
        while time.monotonic() < deadline:
            with self._lock:
                if not any(due < before for due in self._pending.values()):
                    return
            time.sleep(0.02)

    def between(self, start: float, end: float) -> list[Request]:
        """Requests sent in [start, end), by send time."""
        with self._lock:
            return sorted((s for s in self.samples if start <= s.sent < end), key=lambda s: s.sent)

    def snapshot(self) -> list[Request]:
        with self._lock:
            return sorted(self.samples, key=lambda s: s.sent)
