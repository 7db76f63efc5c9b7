"""A rollout as a sequence of steps, decided with no I/O.

The deployer executes one step, reports its `Outcome` (what it could not know in advance: a
probe failed, the stop signal came), and asks `next_step` for the next one, until `Done`.
The rules live here: start-first or stop-first batches, the delay between batches, what a
failed batch does (failure_action), the pipelined drain, and stopping mid-rollout.

Start-first batches are pipelined: once a batch's new instances serve, its old ones leave
the rotation and drain (proxy_settle + drain) while the next batch starts; they are stopped
after the last batch, each once its drain is over. Stop-first batches take the old ones out,
drain and stop them before starting the new ones."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from sidecar.core.planner import Batch, plan_rollout
from sidecar.core.serving import RolloutSpec

CANCELLED = "cancelled: the sidecar is stopping"
PAUSED = "rollout paused: a new instance failed its health check; the old instances keep serving"


@dataclass(frozen=True)
class Wait:
    """The pause between batches (rollout.delay); cut short by the stop signal."""

    seconds: float


@dataclass(frozen=True)
class Start:
    """Start `count` new instances, probe each, join the healthy ones to the rotation."""

    count: int


@dataclass(frozen=True)
class Leave:
    """Take the batch's old instances out of the rotation; their drain begins now."""

    batch: int
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Drain:
    """Wait until the batch's drain (proxy_settle + drain after it left) is over."""

    batch: int


@dataclass(frozen=True)
class Retire:
    """Stop and remove the batch's old instances."""

    batch: int
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Restore:
    """Stopping mid-drain: the proxy may still send to them, so they go back to serving."""

    batch: int


@dataclass(frozen=True)
class Done:
    ok: bool
    detail: str
    started: int
    retired: int


Step = Wait | Start | Leave | Drain | Retire | Restore | Done


@dataclass(frozen=True)
class Outcome:
    """What the executor saw doing a step."""

    cancelled: bool = False  # the stop signal was set when the step ended
    ok: bool = True  # Start: every new instance is healthy and serving
    count: int = 0  # Start: instances joined; Leave: instances taken out of the rotation


@dataclass(frozen=True)
class RolloutState:
    batches: tuple[Batch, ...]
    policy: RolloutSpec
    batch: int = 0  # the batch being worked on
    last: Step | None = None  # the step whose outcome comes next
    started: int = 0
    retired: int = 0
    draining: tuple[int, ...] = ()  # batches whose old instances drain, to retire at the end
    routed: frozenset[int] = frozenset()  # batches whose Leave took serving instances out
    verdict: tuple[bool, str] | None = None  # (ok, detail) once the batches are over


def begin_rollout(old: list[str], replicas: int, policy: RolloutSpec) -> tuple[RolloutState, Step]:
    """Replace every instance in `old` (oldest first) by `replicas` new ones."""
    batches = tuple(plan_rollout(old, replicas, policy.parallelism))
    return _open_batch(RolloutState(batches, policy), 0)


def begin_retire(ids: tuple[str, ...]) -> tuple[RolloutState, Step]:
    """Retire instances without replacing them (a converge scaling in): leave, drain, stop."""
    state = RolloutState((Batch(0, ids),), RolloutSpec(), verdict=(True, ""))
    if not ids:
        return _finish_drains(state)
    return _issue(state, Leave(0, ids))


def next_step(state: RolloutState, outcome: Outcome) -> tuple[RolloutState, Step]:
    """The step after `state.last`, given what doing it showed."""
    last = state.last
    if isinstance(last, Wait):
        return _end(state, False, CANCELLED) if outcome.cancelled else _after_wait(state)
    if isinstance(last, Start):
        return _after_start(state, outcome)
    if isinstance(last, Leave):
        return _after_leave(state, outcome)
    if isinstance(last, Drain):
        old = state.batches[last.batch].retire
        return _issue(state, Restore(last.batch) if outcome.cancelled else Retire(last.batch, old))
    if isinstance(last, Retire | Restore):
        return _after_retire(state, last)
    raise ValueError(f"no step follows {last!r}")


def _issue(state: RolloutState, step: Step) -> tuple[RolloutState, Step]:
    return replace(state, last=step), step


def _open_batch(state: RolloutState, n: int) -> tuple[RolloutState, Step]:
    state = replace(state, batch=n)
    if n >= len(state.batches):
        return _end(state, True, "")
    if n and state.policy.delay:
        return _issue(state, Wait(state.policy.delay))
    return _after_wait(state)


def _after_wait(state: RolloutState) -> tuple[RolloutState, Step]:
    batch = state.batches[state.batch]
    if state.policy.order == "stop-first" and batch.retire:
        return _issue(state, Leave(state.batch, batch.retire))
    return _issue(state, Start(batch.start))


def _after_start(state: RolloutState, outcome: Outcome) -> tuple[RolloutState, Step]:
    state = replace(state, started=state.started + outcome.count)
    if outcome.cancelled:
        return _end(state, False, CANCELLED)
    if not outcome.ok:
        if state.policy.failure_action == "pause":
            return _end(state, False, PAUSED)
        # continue: this batch's old instances keep serving, the next batch goes ahead
        return _open_batch(state, state.batch + 1)
    old = state.batches[state.batch].retire
    if state.policy.order == "start-first" and old:
        return _issue(state, Leave(state.batch, old))
    return _open_batch(state, state.batch + 1)


def _after_leave(state: RolloutState, outcome: Outcome) -> tuple[RolloutState, Step]:
    n = state.batch
    if outcome.count:
        state = replace(state, routed=state.routed | {n})
    if state.policy.order == "stop-first" and state.verdict is None:
        return _drain_or_retire(state, n)
    # no wait here: the next batch starts while these drain
    state = replace(state, draining=(*state.draining, n))
    return _open_batch(state, n + 1) if state.verdict is None else _finish_drains(state)


def _drain_or_retire(state: RolloutState, n: int) -> tuple[RolloutState, Step]:
    """Instances that never served need no drain: nothing routes to them."""
    if n in state.routed:
        return _issue(state, Drain(n))
    return _issue(state, Retire(n, state.batches[n].retire))


def _after_retire(state: RolloutState, last: Retire | Restore) -> tuple[RolloutState, Step]:
    if state.verdict is None:  # stop-first: the batch's new instances start now
        return _issue(state, Start(state.batches[state.batch].start))
    if isinstance(last, Retire):
        state = replace(state, retired=state.retired + len(last.ids))
    return _finish_drains(state)


def _end(state: RolloutState, ok: bool, detail: str) -> tuple[RolloutState, Step]:
    """The batches are over (done, paused or cancelled): what drains is still retired."""
    return _finish_drains(replace(state, verdict=(ok, detail)))


def _finish_drains(state: RolloutState) -> tuple[RolloutState, Step]:
    if state.draining:
        n, rest = state.draining[0], state.draining[1:]
        return _drain_or_retire(replace(state, batch=n, draining=rest), n)
    ok, detail = state.verdict or (True, "")
    if ok:
        detail = f"rolled out {state.started} new, retired {state.retired}"
    return _issue(state, Done(ok, detail, state.started, state.retired))


def monitor_casualties(
    new: Sequence[str], members: Collection[str], alive: Collection[str]
) -> list[str]:
    """New instances still in the rotation that are no longer running after the monitor
    window: a failed update. (One the events thread already took out is not counted.)"""
    return [cid for cid in new if cid in members and cid not in alive]


def start_ok(count: int, made: int, joined: int) -> bool:
    """A Start succeeded when compose made every instance asked for and all of them serve."""
    return joined == made == count
