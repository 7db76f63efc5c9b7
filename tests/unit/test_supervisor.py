"""The supervisor: no thread dies unseen. Real threads, waits of milliseconds."""

from __future__ import annotations

import threading
import time

import redis

from sidecar.runtime.supervisor import RUNNING, Supervisor


def _until(check: object, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.005)
    raise AssertionError("condition not reached")


def test_a_thread_that_raises_is_restarted_and_reported_meanwhile() -> None:
    """Bug: the command reader ended on a Redis ResponseError and nothing noticed."""
    sup = Supervisor(backoffs=(0.2,))
    runs: list[int] = []

    def body(stop: threading.Event) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise redis.ResponseError("WRONGTYPE Operation against a key")
        stop.wait()

    sup.spawn("commands", body)
    _until(lambda: sup.states()["commands"].startswith("restarting"))
    assert "WRONGTYPE" in sup.states()["commands"]
    _until(lambda: len(runs) == 2)
    _until(lambda: sup.states()["commands"] == RUNNING)
    sup.stop()
    assert sup.fatal is None


def test_a_thread_that_returns_early_counts_as_a_failure() -> None:
    sup = Supervisor(backoffs=(0.01,), max_failures=2)
    stopped: list[str] = []
    sup.on_fatal = stopped.append
    sup.spawn("docker-events", lambda stop: None)
    # on_fatal runs just after `fatal` is set (outside the lock): wait for both
    _until(lambda: sup.fatal is not None and bool(stopped))
    assert "docker-events failed 3 times" in (sup.fatal or "")
    assert stopped and stopped[0] == sup.fatal
    assert sup.states()["docker-events"].startswith("dead")
    sup.stop()


def test_a_thread_that_is_not_essential_is_retried_for_good_and_the_daemon_runs_on() -> None:
    """A taken HTTP port failed the thread 11 times and stopped every build and heal."""
    sup = Supervisor(backoffs=(0.001, 0.01), max_failures=2)
    stopped: list[str] = []
    sup.on_fatal = stopped.append
    runs: list[int] = []

    def bind(stop: threading.Event) -> None:
        runs.append(1)
        raise OSError(98, "address already in use")

    sup.spawn("http", bind, essential=False)
    _until(lambda: len(runs) >= 6)
    assert sup.fatal is None and not stopped
    state = sup.states()["http"]
    assert state.startswith(("restarting", RUNNING)), state
    sup.stop()


def test_stop_interrupts_and_joins() -> None:
    sup = Supervisor()
    interrupted = threading.Event()

    def reader(stop: threading.Event) -> None:
        interrupted.wait()

    sup.spawn("reader", reader, interrupt=interrupted.set)
    t0 = time.monotonic()
    sup.stop()
    assert interrupted.is_set()
    assert time.monotonic() - t0 < 1.0
    assert sup.states()["reader"] == RUNNING  # ended by the stop rule: not a failure


def test_an_adopted_thread_that_died_is_restarted_by_check() -> None:
    sup = Supervisor(backoffs=(0.0,))
    alive = {"v": True}
    restarts: list[int] = []

    def restart() -> None:
        restarts.append(1)
        alive["v"] = True

    sup.adopt("watcher", lambda: alive["v"], restart)
    sup.check()
    assert restarts == []
    alive["v"] = False
    sup.check()
    assert restarts == [1]
    assert sup.states()["watcher"].startswith("restarting")
    sup.check()
    assert sup.states()["watcher"] == RUNNING
