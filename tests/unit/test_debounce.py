"""Debouncer with explicit fake timestamps (seconds as floats); no real clock anywhere."""

from __future__ import annotations

import pytest

from sidecar.core.debounce import Debouncer

QUIET = 0.05
MAX_WAIT = 2.0
T0 = 1000.0


def make() -> Debouncer:
    return Debouncer(quiet=QUIET, max_wait=MAX_WAIT)


def test_empty_debouncer_has_nothing() -> None:
    d = make()
    assert d.pending == 0
    assert d.deadline() is None
    assert d.take(T0) is None
    assert d.take(T0 + 1e6) is None


@pytest.mark.parametrize("empty", [[], (), set(), iter(())])
def test_empty_add_does_nothing(empty: list[str]) -> None:
    d = make()
    d.add(empty, T0)
    assert d.pending == 0
    assert d.deadline() is None
    assert d.take(T0 + 10) is None


def test_empty_add_does_not_extend_the_quiet_window() -> None:
    d = make()
    d.add(["a"], T0)
    d.add([], T0 + 0.04)
    assert d.deadline() == pytest.approx(T0 + QUIET)
    assert d.take(T0 + QUIET) == {"a"}


def test_burst_of_300_adds_releases_exactly_one_batch() -> None:
    d = make()
    paths = [f"/ws/web/src/file{i}.js" for i in range(300)]
    released: list[set[str]] = []
    now = T0
    for i, path in enumerate(paths):
        now = T0 + i * 0.001
        d.add([path], now)
        # polling between events never releases a half batch
        batch = d.take(now + 0.0005)
        if batch is not None:
            released.append(batch)
    assert released == []
    last = now
    assert d.take(last + QUIET - 1e-6) is None
    batch = d.take(last + QUIET)
    assert batch == set(paths)
    assert d.pending == 0
    assert d.deadline() is None
    assert d.take(last + 100) is None


def test_duplicates_are_merged() -> None:
    d = make()
    d.add(["a", "b", "a"], T0)
    d.add(["b"], T0 + 0.01)
    assert d.pending == 2
    assert d.take(T0 + 1) == {"a", "b"}


@pytest.mark.parametrize(
    ("offset", "released"),
    [
        (0.0, False),
        (QUIET / 2, False),
        (QUIET - 1e-6, False),
        (QUIET, True),
        (QUIET + 1e-6, True),
        (10.0, True),
    ],
)
def test_quiet_window_is_respected(offset: float, released: bool) -> None:
    d = make()
    d.add(["a"], T0)
    batch = d.take(T0 + offset)
    assert (batch == {"a"}) is released
    assert (batch is None) is (not released)


def test_each_event_restarts_the_quiet_window() -> None:
    d = make()
    d.add(["a"], T0)
    d.add(["b"], T0 + 0.04)
    assert d.deadline() == pytest.approx(T0 + 0.04 + QUIET)
    assert d.take(T0 + QUIET) is None  # quiet since the *first* event, not the last
    assert d.take(T0 + 0.04 + QUIET) == {"a", "b"}


def test_max_wait_caps_a_never_ending_stream() -> None:
    d = make()
    step = 0.01  # events every 10 ms, always inside the 50 ms quiet window
    batches: list[tuple[float, set[str]]] = []
    for i in range(1000):  # 10 s of writes
        now = T0 + i * step
        d.add([f"f{i}"], now)
        batch = d.take(now)
        if batch is not None:
            batches.append((now, batch))
    assert batches, "a stream that never stops must still be released"
    first_at, first = batches[0]
    assert MAX_WAIT - 1e-9 <= first_at - T0 <= MAX_WAIT + step
    assert "f0" in first
    # every release honours the cap relative to the first event of its batch
    assert len(batches) == pytest.approx(10 / MAX_WAIT, abs=1)
    seen = [p for _, b in batches for p in b]
    assert len(seen) == len(set(seen))


def test_deadline_is_min_of_quiet_and_max_wait() -> None:
    d = make()
    d.add(["a"], T0)
    assert d.deadline() == pytest.approx(T0 + QUIET)
    d.add(["b"], T0 + 1.99)
    assert d.deadline() == pytest.approx(T0 + MAX_WAIT)  # capped by max_wait
    assert d.take(T0 + 1.995) is None
    assert d.take(T0 + MAX_WAIT) == {"a", "b"}


def test_deadline_resets_after_take() -> None:
    d = make()
    d.add(["a"], T0)
    assert d.take(T0 + QUIET) == {"a"}
    assert d.deadline() is None
    d.add(["b"], T0 + 5)
    assert d.deadline() == pytest.approx(T0 + 5 + QUIET)
    # the new batch's max_wait counts from its own first event
    d.add(["c"], T0 + 5 + 1.99)
    assert d.deadline() == pytest.approx(T0 + 5 + MAX_WAIT)


def test_hold_postpones_without_limit() -> None:
    d = make()
    d.add(["a"], T0)
    for later in (QUIET, MAX_WAIT, 60.0, 3600.0):
        assert d.take(T0 + later, hold=True) is None
        assert d.pending == 1
    d.add(["b"], T0 + 3600.0)
    assert d.take(T0 + 3600.0, hold=False) == {"a", "b"}


def test_hold_false_before_deadline_still_waits() -> None:
    d = make()
    d.add(["a"], T0)
    assert d.take(T0 + QUIET / 2, hold=False) is None
    assert d.pending == 1


def test_take_returns_a_fresh_set() -> None:
    d = make()
    d.add(["a"], T0)
    batch = d.take(T0 + 1)
    assert batch == {"a"}
    d.add(["b"], T0 + 2)
    assert batch == {"a"}  # the released batch is not the collector's live set


def test_zero_quiet_releases_at_once() -> None:
    d = Debouncer(quiet=0.0, max_wait=0.0)
    d.add(["a"], T0)
    assert d.deadline() == T0
    assert d.take(T0) == {"a"}
