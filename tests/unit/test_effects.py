"""Command effects (sidecar.core.effects): pause/resume sets, replica targets, destroy."""

from __future__ import annotations

import pytest

from sidecar.core.commands import Action, CommandError
from sidecar.core.effects import PauseState, destroy_pick, replica_counts, replica_target

SERVICES = ("web", "api", "worker")


def apply(steps: list[tuple[str, str]]) -> PauseState:
    state = PauseState()
    for op, target in steps:
        state = state.pause(target) if op == "pause" else state.resume(target)
    return state


@pytest.mark.parametrize(
    ("steps", "paused"),
    [
        ([], set()),
        ([("pause", "*")], {"web", "api", "worker"}),
        ([("pause", "*"), ("resume", "web")], {"api", "worker"}),
        ([("pause", "*"), ("resume", "web"), ("pause", "web")], {"web", "api", "worker"}),
        ([("pause", "*"), ("resume", "*")], set()),
        ([("pause", "web")], {"web"}),
        ([("pause", "web"), ("pause", "api"), ("resume", "web")], {"api"}),
        ([("pause", "web"), ("resume", "*")], set()),
        ([("pause", "web"), ("pause", "*"), ("resume", "api")], {"web", "worker"}),
        ([("resume", "web")], set()),
    ],
)
def test_pause_state(steps: list[tuple[str, str]], paused: set[str]) -> None:
    state = apply(steps)
    assert {s for s in SERVICES if state.is_paused(s)} == paused
    # what Redis stores reads back as the same state
    again = PauseState.from_members(state.members())
    assert {s for s in SERVICES if again.is_paused(s)} == paused


@pytest.mark.parametrize(
    ("steps", "target", "message"),
    [
        ([("pause", "*")], "*", "file changes of every service are ignored"),
        ([("pause", "*"), ("resume", "web")], "web", "file changes of web are followed"),
        ([("pause", "web")], "web", "file changes of web are ignored"),
        ([("pause", "web"), ("resume", "*")], "*", "file changes of every service are followed"),
    ],
)
def test_pause_answers_say_what_is_true(
    steps: list[tuple[str, str]], target: str, message: str
) -> None:
    assert apply(steps).describe(target) == message


@pytest.mark.parametrize(
    ("action", "current", "requested", "target"),
    [
        (Action.SCALE, 2, 5, 5),
        (Action.SCALE, 2, 0, 0),
        (Action.SPAWN, 2, None, 3),
        (Action.DESTROY, 2, None, 1),
    ],
)
def test_replica_target(action: Action, current: int, requested: int | None, target: int) -> None:
    assert replica_target(action, current, requested) == target


def test_replica_target_of_another_action_is_a_bug() -> None:
    with pytest.raises(ValueError, match="sets no replica count"):
        replica_target(Action.PAUSE, 1, None)


@pytest.mark.parametrize(
    ("named", "pick"),
    [(None, None), ("", None), ("p-web-2", "p-web-2")],
)
def test_destroy_pick(named: str | None, pick: str | None) -> None:
    assert destroy_pick("web", ["p-web-1", "p-web-2"], named) == pick


def test_destroy_of_an_instance_of_another_service_is_refused() -> None:
    with pytest.raises(CommandError, match="p-api-1 is not an instance of web"):
        destroy_pick("web", ["p-web-1"], "p-api-1")


def test_replica_counts_prefer_the_override() -> None:
    assert replica_counts({"web": 2, "api": 1}, {"web": 4, "gone": 9}, ["web", "api"]) == {
        "web": 4,
        "api": 1,
    }
