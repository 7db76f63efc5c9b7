"""Every long-running thread is started here, so none can die silently (kopf's guarded
tasks). A thread that ends while the daemon is not stopping, or raises, is logged with its
error and restarted after a backoff; one that keeps failing (`max_failures` within
`window_s`) stops the daemon with a clear message and a non-zero exit, unless it is not
essential (the HTTP server: a taken port must not stop the builds and the healing), which is
retried at the longest backoff for as long as it fails, its state saying why. The states are part
of the heartbeat, so `sidecar check` and `sidecar status` name a thread that is not running.

One stop rule: `stop()` sets the one stop event every supervised loop waits on, calls each
thread's interrupt (to end a blocking read), and joins them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loguru import logger

from sidecar.core.ports import Clock, SystemClock

RUNNING = "running"
RESTARTING = "restarting"
DEAD = "dead"
# Waits between restarts, in seconds (the last repeats): data, like kopf's error_backoffs.
BACKOFFS = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class _Unit:
    name: str
    target: Callable[[threading.Event], None] | None = None
    interrupt: Callable[[], None] | None = None
    alive: Callable[[], bool] | None = None  # an adopted thread: how to tell it runs
    restart: Callable[[], None] | None = None  # ... and how to start it again
    essential: bool = True  # failing for good stops the daemon (else: retried, reported)
    thread: threading.Thread | None = None
    state: str = RUNNING
    error: str = ""
    failures: list[float] = field(default_factory=list)
    next_try: float = 0.0


class Supervisor:
    def __init__(
        self,
        clock: Clock | None = None,
        backoffs: Sequence[float] = BACKOFFS,
        max_failures: int = 10,
        window_s: float = 300.0,
    ) -> None:
        self.clock = clock or SystemClock()
        self.backoffs = tuple(backoffs)
        self.max_failures = max_failures
        self.window_s = window_s
        self.stopping = threading.Event()
        self.fatal: str | None = None  # set once a thread cannot be kept alive
        self._units: dict[str, _Unit] = {}
        self._lock = threading.Lock()
        self.on_fatal: Callable[[str], None] = lambda _msg: None

    # --- starting ------------------------------------------------------------------------
    def spawn(
        self,
        name: str,
        target: Callable[[threading.Event], None],
        interrupt: Callable[[], None] | None = None,
        essential: bool = True,
    ) -> None:
        """Run `target(stop_event)` on a thread of its own, restarting it when it ends or
        raises before the stop. `target` must return soon after the stop event is set."""
        unit = _Unit(name, target=target, interrupt=interrupt, essential=essential)
        self._units[name] = unit
        unit.thread = threading.Thread(target=self._guard, args=(unit,), name=name, daemon=True)
        unit.thread.start()

    def adopt(self, name: str, alive: Callable[[], bool], restart: Callable[[], None]) -> None:
        """A thread a library owns (watchdog's inotify reader): checked by `check()`."""
        self._units[name] = _Unit(name, alive=alive, restart=restart)

    # --- the guard -----------------------------------------------------------------------
    def _guard(self, unit: _Unit) -> None:
        assert unit.target is not None
        while not self.stopping.is_set():
            try:
                unit.target(self.stopping)
                if self.stopping.is_set():
                    return
                error = "returned while the daemon was running"
            except Exception as exc:  # noqa: BLE001 - the point: no thread dies unseen
                if self.stopping.is_set():
                    return
                error = f"{type(exc).__name__}: {exc}"
                logger.opt(exception=exc).error("thread {} failed: {}", unit.name, error)
            delay = self._failed(unit, error)
            if delay is None:
                return
            self.stopping.wait(delay)
            with self._lock:
                if not self.stopping.is_set():
                    unit.state = RUNNING

    def _failed(self, unit: _Unit, error: str) -> float | None:
        """Record a failure; the wait before the restart, or None when it is given up."""
        now = self.clock.monotonic()
        with self._lock:
            unit.failures = [t for t in unit.failures if now - t < self.window_s] + [now]
            unit.error = error
            attempt = len(unit.failures)
            if attempt > self.max_failures and not unit.essential:
                unit.state = RESTARTING
                if attempt == self.max_failures + 1:
                    logger.error(
                        "thread {} failed {} times within {:g}s: retrying every {:g}s, "
                        "the daemon runs on; last error: {}",
                        unit.name,
                        attempt,
                        self.window_s,
                        self.backoffs[-1],
                        error,
                    )
                return self.backoffs[-1]
            if attempt > self.max_failures:
                unit.state = DEAD
                self.fatal = (
                    f"thread {unit.name} failed {attempt} times within {self.window_s:g}s; "
                    f"last error: {error}"
                )
            else:
                unit.state = RESTARTING
        if unit.state == DEAD:
            logger.error("{}: stopping the daemon", self.fatal)
            self.on_fatal(self.fatal or "")
            return None
        delay = self.backoffs[min(attempt, len(self.backoffs)) - 1]
        logger.warning(
            "thread {} restarting in {:g}s (attempt {}/{}): {}",
            unit.name,
            delay,
            attempt,
            self.max_failures,
            error,
        )
        return delay

    def check(self) -> None:
        """Called by the reactor on every heartbeat: restart adopted threads that died."""
        now = self.clock.monotonic()
        for unit in list(self._units.values()):
            if unit.alive is None or self.stopping.is_set() or now < unit.next_try:
                continue
            if unit.alive():
                if unit.state == RESTARTING:
                    unit.state = RUNNING
                continue
            delay = self._failed(unit, unit.error or "thread ended")
            if delay is None:
                continue
            unit.next_try = now + delay
            try:
                assert unit.restart is not None
                unit.restart()
            except Exception as exc:  # noqa: BLE001 - reported as the unit's state
                unit.error = f"{type(exc).__name__}: {exc}"
                logger.error("thread {} could not be restarted: {}", unit.name, unit.error)

    # --- reading -------------------------------------------------------------------------
    def states(self) -> dict[str, str]:
        """name -> `running`, or `restarting: <error>` / `dead: <error>`."""
        out = {}
        with self._lock:
            for name, unit in self._units.items():
                if unit.state == RUNNING and unit.thread is not None and not unit.thread.is_alive():
                    unit.state = DEAD if not self.stopping.is_set() else RUNNING
                out[name] = unit.state if unit.state == RUNNING else f"{unit.state}: {unit.error}"
        return out

    # --- stopping ------------------------------------------------------------------------
    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for unit in self._units.values():
            if unit.interrupt is not None:
                try:
                    unit.interrupt()
                except Exception as exc:  # noqa: BLE001 - stopping goes on regardless
                    logger.warning("interrupting {} failed: {}", unit.name, exc)
        for unit in self._units.values():
            if unit.thread is not None:
                unit.thread.join(timeout)
