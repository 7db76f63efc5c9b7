"""A rollout's steps as tables: start-first and stop-first batches, parallelism, the delay,
a failed probe with failure_action pause or continue, the pipelined drain, and stopping.

`trace` plays the executor with scripted outcomes and writes each step as a short line, so a
row reads as: the policy and what happened -> the steps the deployer carries out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sidecar.core.rollout_steps import (
    CANCELLED,
    PAUSED,
    Done,
    Drain,
    Leave,
    Outcome,
    Restore,
    Retire,
    RolloutState,
    Start,
    Step,
    Wait,
    begin_retire,
    begin_rollout,
    monitor_casualties,
    next_step,
    start_ok,
)
from sidecar.core.serving import RolloutSpec


@dataclass(frozen=True)
class Script:
    """What the executor sees. Steps are counted from 0 in the order they run."""

    failing_starts: frozenset[int] = frozenset()  # these Starts (0, 1, ...) fail a probe
    stop_at: int | None = None  # the stop signal is set during this step, and stays set
    not_serving: frozenset[str] = frozenset()  # old ones already out of the rotation


def line(step: Step) -> str:
    match step:
        case Wait(seconds):
            return f"wait {seconds:g}"
        case Start(count):
            return f"start {count}"
        case Leave(batch, ids):
            return f"leave {batch} {','.join(ids)}"
        case Drain(batch):
            return f"drain {batch}"
        case Retire(batch, ids):
            return f"retire {batch} {','.join(ids)}"
        case Restore(batch):
            return f"restore {batch}"
        case Done(ok, detail, started, retired):
            return f"done {'ok' if ok else 'failed'} +{started} -{retired}: {detail}"
    raise AssertionError(step)


def outcome(step: Step, n: int, starts: int, script: Script) -> Outcome:
    stopping = script.stop_at is not None and n >= script.stop_at
    match step:
        case Start(count):
            # the executor starts nothing once stopping, and removes what it was probing
            failed = stopping or starts in script.failing_starts
            return Outcome(cancelled=stopping, ok=not failed, count=0 if failed else count)
        case Leave(_, ids):
            return Outcome(cancelled=stopping, count=len(set(ids) - script.not_serving))
    return Outcome(cancelled=stopping)


def run(state: RolloutState, step: Step, script: Script) -> list[str]:
    steps, starts = [], 0
    while not isinstance(step, Done):
        steps.append(line(step))
        result = outcome(step, len(steps) - 1, starts, script)
        starts += isinstance(step, Start)
        state, step = next_step(state, result)
    return [*steps, line(step)]


def trace(old: str, replicas: int, script: Script | None = None, **policy: Any) -> list[str]:
    state, step = begin_rollout(list(old), replicas, RolloutSpec(**policy))
    return run(state, step, script or Script())


def given(old: str, replicas: int, script: Script | None = None, **policy: Any) -> dict[str, Any]:
    return {"old": old, "replicas": replicas, "script": script, **policy}


def ok(started: int, retired: int) -> str:
    return f"done ok +{started} -{retired}: rolled out {started} new, retired {retired}"


def failed(started: int, retired: int, detail: str) -> str:
    return f"done failed +{started} -{retired}: {detail}"


CASES = [
    pytest.param(
        given("ab", 2),
        "start 1; leave 0 a; start 1; leave 1 b; drain 0; retire 0 a; drain 1; retire 1 b",
        ok(2, 2),
        id="start-first, parallelism 1: old ones drain while the next batch starts",
    ),
    pytest.param(
        given("abc", 3, parallelism=2),
        "start 2; leave 0 a,b; start 1; leave 1 c; drain 0; retire 0 a,b; drain 1; retire 1 c",
        ok(3, 3),
        id="start-first, parallelism 2",
    ),
    pytest.param(
        given("ab", 2, order="stop-first"),
        "leave 0 a; drain 0; retire 0 a; start 1; leave 1 b; drain 1; retire 1 b; start 1",
        ok(2, 0),
        # stop-first reports retired 0, as the deployer always has: only drains that end
        # after the batches are counted
        id="stop-first, parallelism 1: old out, drained and stopped before the new starts",
    ),
    pytest.param(
        given("abc", 3, order="stop-first", parallelism=2),
        "leave 0 a,b; drain 0; retire 0 a,b; start 2; leave 1 c; drain 1; retire 1 c; start 1",
        ok(3, 0),
        id="stop-first, parallelism 2",
    ),
    pytest.param(
        given("", 2),
        "start 1; start 1",
        ok(2, 0),
        id="nothing running yet: only starts",
    ),
    pytest.param(
        given("a", 3),
        "start 1; leave 0 a; start 1; start 1; drain 0; retire 0 a",
        ok(3, 1),
        id="more new than old",
    ),
    pytest.param(
        given("abc", 1),
        "start 1; leave 0 a; start 0; leave 1 b; start 0; leave 2 c; "
        "drain 0; retire 0 a; drain 1; retire 1 b; drain 2; retire 2 c",
        ok(1, 3),
        id="fewer new than old",
    ),
    pytest.param(
        given("ab", 2, delay=2.0),
        "start 1; leave 0 a; wait 2; start 1; leave 1 b; drain 0; retire 0 a; drain 1; retire 1 b",
        ok(2, 2),
        id="delay between batches, not before the first",
    ),
    pytest.param(
        given("ab", 2, Script(not_serving=frozenset({"a"}))),
        "start 1; leave 0 a; start 1; leave 1 b; retire 0 a; drain 1; retire 1 b",
        ok(2, 2),
        id="an old one no longer in the rotation is stopped without a drain",
    ),
    pytest.param(
        given("ab", 2, Script(not_serving=frozenset({"a"})), order="stop-first"),
        "leave 0 a; retire 0 a; start 1; leave 1 b; drain 1; retire 1 b; start 1",
        ok(2, 0),
        id="stop-first: no drain for one that was not serving",
    ),
    pytest.param(
        given("ab", 2, Script(failing_starts=frozenset({0}))),
        "start 1",
        failed(0, 0, PAUSED),
        id="failed probe, pause: stops at once, the old ones keep serving",
    ),
    pytest.param(
        given("abc", 3, Script(failing_starts=frozenset({1}))),
        "start 1; leave 0 a; start 1; drain 0; retire 0 a",
        failed(1, 1, PAUSED),
        id="failed probe in batch 2, pause: batch 1's old one still drains and retires",
    ),
    pytest.param(
        given("ab", 2, Script(failing_starts=frozenset({0})), failure_action="continue"),
        "start 1; start 1; leave 1 b; drain 1; retire 1 b",
        ok(1, 1),
        id="failed probe, continue: that batch's old one keeps serving, the next goes ahead",
    ),
    pytest.param(
        given(
            "ab",
            2,
            Script(failing_starts=frozenset({0})),
            order="stop-first",
            failure_action="continue",
        ),
        "leave 0 a; drain 0; retire 0 a; start 1; leave 1 b; drain 1; retire 1 b; start 1",
        ok(1, 0),
        id="stop-first, failed probe, continue",
    ),
    pytest.param(
        given("ab", 2, Script(failing_starts=frozenset({0})), order="stop-first"),
        "leave 0 a; drain 0; retire 0 a; start 1",
        failed(0, 0, PAUSED),
        id="stop-first, failed probe, pause: the old one is already gone",
    ),
    pytest.param(
        given("ab", 2, Script(stop_at=2)),
        "start 1; leave 0 a; start 1; drain 0; restore 0",
        failed(1, 0, CANCELLED),
        id="stopping mid-rollout: the new one being probed goes, the drained one serves again",
    ),
    pytest.param(
        given("ab", 2, Script(stop_at=0)),
        "start 1",
        failed(0, 0, CANCELLED),
        id="stopping during the first start",
    ),
    pytest.param(
        given("ab", 2, Script(stop_at=2), delay=5.0),
        "start 1; leave 0 a; wait 5; drain 0; restore 0",
        failed(1, 0, CANCELLED),
        id="stopping during the delay",
    ),
    pytest.param(
        given("ab", 2, Script(stop_at=1), order="stop-first"),
        "leave 0 a; drain 0; restore 0; start 1",
        failed(0, 0, CANCELLED),
        id="stop-first, stopping mid-drain: the old one serves again, nothing starts",
    ),
    pytest.param(
        given("ab", 2, Script(stop_at=3)),
        "start 1; leave 0 a; start 1; leave 1 b; drain 0; restore 0; drain 1; restore 1",
        ok(2, 0),
        # as before the step plan: the signal after the last batch's join does not fail
        # the rollout, but every drained instance stays
        id="stopping after the last join: drained ones serve again",
    ),
]


@pytest.mark.parametrize(("args", "steps", "done"), CASES)
def test_rollout_steps(args: dict[str, Any], steps: str, done: str) -> None:
    assert trace(**args) == [*steps.split("; "), done]


@pytest.mark.parametrize(
    ("ids", "script", "expected"),
    [
        ((), Script(), ["done ok +0 -0: rolled out 0 new, retired 0"]),
        (("c",), Script(), ["leave 0 c", "drain 0", "retire 0 c", ok(0, 1)]),
        (("b", "c"), Script(), ["leave 0 b,c", "drain 0", "retire 0 b,c", ok(0, 2)]),
        (("c",), Script(not_serving=frozenset("c")), ["leave 0 c", "retire 0 c", ok(0, 1)]),
        (("c",), Script(stop_at=1), ["leave 0 c", "drain 0", "restore 0", ok(0, 0)]),
    ],
    ids=["nothing", "one", "two", "not serving: no drain", "stopping mid-drain"],
)
def test_retire_steps(ids: tuple[str, ...], script: Script, expected: list[str]) -> None:
    assert run(*begin_retire(ids), script) == expected


def test_done_has_no_next_step() -> None:
    state, step = begin_retire(())
    assert isinstance(step, Done)
    with pytest.raises(ValueError, match="no step follows"):
        next_step(state, Outcome())


@pytest.mark.parametrize(
    ("new", "members", "alive", "expected"),
    [
        (["n1", "n2"], {"n1", "n2"}, {"n1", "n2"}, []),
        (["n1", "n2"], {"n1", "n2"}, {"n1"}, ["n2"]),
        (["n1", "n2"], {"n1"}, {"n1"}, []),  # the events thread already took n2 out
        (["n1"], set(), set(), []),  # never joined
    ],
)
def test_monitor_casualties(
    new: list[str], members: set[str], alive: set[str], expected: list[str]
) -> None:
    assert monitor_casualties(new, members, alive) == expected


@pytest.mark.parametrize(
    ("count", "made", "joined", "expected"),
    [
        (2, 2, 2, True),
        (2, 2, 1, False),  # one unhealthy
        (2, 1, 1, False),  # compose made fewer than asked
        (2, 3, 3, False),  # someone else's container appeared meanwhile
    ],
)
def test_start_ok(count: int, made: int, joined: int, expected: bool) -> None:
    assert start_ok(count, made, joined) is expected
