"""A converge's decisions as tables: leftovers, the rotation fixed, admission oldest first,
scaling with a `destroy` and paused instances, and whether anything changed.

`run_converge` plays the deployer's part with a table of probe results instead of Docker, so
each row reads as: what Docker and the rotation show -> what the converge does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from sidecar.core.converge import (
    Admission,
    ConvergePlan,
    Verdict,
    admissible,
    admission_verdict,
    converge_changed,
    leftovers,
    next_admission,
    plan_converge,
    plan_converge_scale,
)
from sidecar.core.types import Instance


def inst(cid: str, state: str = "running") -> Instance:
    """Instance `cid`, named p-web-<cid>; the table lists them oldest first."""
    return Instance(
        id=cid,
        name=f"p-web-{cid}",
        number=0,
        image="p-web",
        state=state,
        health=None,
        ips={},
        host_ports={},
        created=0.0,
    )


def members(*ids: str) -> dict[str, str]:
    return {cid: f"http://{cid}:8080" for cid in ids}


@dataclass(frozen=True)
class Converged:
    remove: list[str]
    unroute: tuple[str, ...]
    probed: list[str]
    admitted: tuple[str, ...]
    surplus: tuple[str, ...]
    start: int
    retire: tuple[str, ...]
    changed: bool


def run_converge(
    replicas: int,
    instances: list[Instance],
    rotation: Mapping[str, str],
    leaving: frozenset[str] = frozenset(),
    failing: frozenset[str] = frozenset(),
    destroy: str | None = None,
) -> Converged:
    """The deployer's sequence with probes that fail for `failing`; every start and retire
    is assumed to succeed."""
    remove = leftovers(instances)
    plan = plan_converge(replicas, instances, rotation, leaving)
    probed: dict[str, bool] = {}
    while (admission := next_admission(plan, probed)).probe is not None:
        probed[admission.probe] = admission.probe not in failing
    scale = plan_converge_scale(plan, admission.admitted, destroy)
    changed = converge_changed(plan, scale, admission.surplus, scale.start, len(scale.retire))
    return Converged(
        remove,
        plan.unroute,
        list(probed),
        admission.admitted,
        admission.surplus,
        scale.start,
        scale.retire,
        changed,
    )


def did(
    remove: list[str] | None = None,
    unroute: tuple[str, ...] = (),
    probed: list[str] | None = None,
    admitted: tuple[str, ...] = (),
    surplus: tuple[str, ...] = (),
    start: int = 0,
    retire: tuple[str, ...] = (),
    changed: bool = True,
) -> Converged:
    return Converged(remove or [], unroute, probed or [], admitted, surplus, start, retire, changed)


A, B, C, D = inst("a"), inst("b"), inst("c"), inst("d")

CASES = [
    pytest.param(
        dict(replicas=2, instances=[A, B], rotation=members("a", "b")),
        did(changed=False),
        id="all healthy as declared: nothing to do",
    ),
    pytest.param(
        dict(replicas=0, instances=[], rotation={}),
        did(changed=False),
        id="zero declared, none there",
    ),
    pytest.param(
        dict(replicas=1, instances=[A, inst("b", "exited")], rotation=members("a")),
        did(remove=["b"], changed=False),
        id="dead leftover removed (reported by Docker events, not as a change)",
    ),
    pytest.param(
        dict(replicas=2, instances=[A, inst("b", "exited")], rotation=members("a")),
        did(remove=["b"], start=1),
        id="dead leftover removed and replaced",
    ),
    pytest.param(
        dict(replicas=2, instances=[inst("a", "created"), inst("b", "dead"), C], rotation={}),
        did(remove=["a", "b"], probed=["c"], admitted=("c",), start=1),
        id="created and dead are leftovers too",
    ),
    pytest.param(
        dict(replicas=2, instances=[A, B], rotation=members("a"), leaving=frozenset({"b"})),
        did(start=1),
        id="killed instance still running: not counted, not admitted, replaced",
    ),
    pytest.param(
        dict(replicas=2, instances=[A, B], rotation=members("a", "b"), leaving=frozenset({"b"})),
        did(unroute=("b",), start=1),
        id="killed instance still a member: unrouted and replaced",
    ),
    pytest.param(
        dict(replicas=2, instances=[A], rotation=members("a", "x")),
        did(unroute=("x",), start=1),
        id="member gone (docker rm -f): unrouted and replaced",
    ),
    pytest.param(
        dict(replicas=2, instances=[A, B, C], rotation=members("a", "b")),
        did(surplus=("c",)),
        id="hand-made extra (compose up --scale) stopped, never probed",
    ),
    pytest.param(
        dict(replicas=1, instances=[A, B, C, D], rotation={}),
        did(probed=["a"], admitted=("a",), surplus=("b", "c", "d")),
        id="restart after SIGKILL: oldest admitted, the rest stopped",
    ),
    pytest.param(
        dict(replicas=2, instances=[A, B, C], rotation={}, failing=frozenset({"b"})),
        did(probed=["a", "b", "c"], admitted=("a", "c")),
        id="failed probe: the next candidate is tried",
    ),
    pytest.param(
        dict(replicas=2, instances=[A, B], rotation={}, failing=frozenset({"a", "b"})),
        did(probed=["a", "b"], start=2, changed=True),
        id="every candidate fails: new ones started",
    ),
    pytest.param(
        dict(replicas=3, instances=[C, A], rotation=members("a")),
        did(probed=["c"], admitted=("c",), start=1),
        id="unproven running instance admitted before starting new ones",
    ),
    pytest.param(
        dict(replicas=4, instances=[A, B], rotation=members("a", "b")),
        did(start=2),
        id="scale out 2 -> 4",
    ),
    pytest.param(
        dict(replicas=1, instances=[A, B, C], rotation=members("a", "b", "c")),
        did(retire=("b", "c")),
        id="scale in 3 -> 1: the newest retire",
    ),
    pytest.param(
        dict(replicas=0, instances=[A, B], rotation=members("a", "b")),
        did(retire=("a", "b")),
        id="scale in to zero",
    ),
    pytest.param(
        dict(replicas=2, instances=[A, B, C], rotation=members("a", "b", "c"), destroy="p-web-a"),
        did(retire=("a",)),
        id="destroy naming the oldest: it goes instead of the newest",
    ),
    pytest.param(
        dict(replicas=2, instances=[A, B, C], rotation=members("a", "b", "c"), destroy="p-web-z"),
        did(retire=("c",)),
        id="destroy naming an unknown instance: the newest goes",
    ),
    pytest.param(
        dict(replicas=2, instances=[A, B], rotation=members("a", "b"), destroy="p-web-a"),
        did(changed=False),
        id="destroy already satisfied (count reached): nothing retires",
    ),
    pytest.param(
        dict(replicas=2, instances=[inst("a", "paused"), B], rotation=members("b")),
        did(changed=False),
        id="paused instance counts: nothing started",
    ),
    pytest.param(
        dict(replicas=2, instances=[inst("a", "paused"), B], rotation=members("a", "b")),
        did(unroute=("a",)),
        id="paused member is taken out of the rotation",
    ),
    pytest.param(
        dict(replicas=2, instances=[inst("a", "paused"), B, C], rotation={}),
        did(probed=["b"], admitted=("b",), surplus=("c",)),
        id="paused counts against admission",
    ),
    pytest.param(
        dict(replicas=1, instances=[inst("a", "paused"), inst("b", "paused")], rotation={}),
        did(changed=False),
        id="more paused than declared: a converge never retires a paused one",
    ),
    pytest.param(
        dict(replicas=1, instances=[inst("a", "paused"), B], rotation=members("b")),
        did(retire=("b",)),
        id="paused first in the count: the serving one retires on scale in",
    ),
]


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_converge(given: dict[str, Any], expected: Converged) -> None:
    assert run_converge(**given) == expected


@pytest.mark.parametrize(
    ("instances", "leaving", "expected"),
    [
        ([A, B], set(), ["a", "b"]),
        ([A, B], {"a"}, ["b"]),
        ([inst("a", "paused"), B], set(), ["b"]),
        ([inst("a", "restarting"), inst("b", "exited")], set(), []),
    ],
)
def test_admissible(instances: list[Instance], leaving: set[str], expected: list[str]) -> None:
    assert [i.id for i in admissible(instances, leaving)] == expected


def plan(replicas: int, serving: int, candidates: str, paused: int = 0) -> ConvergePlan:
    return ConvergePlan(
        replicas=replicas,
        members=tuple(f"s{n}" for n in range(serving)),
        unroute=(),
        paused=tuple(f"p{n}" for n in range(paused)),
        serving=tuple(f"s{n}" for n in range(serving)),
        candidates=tuple(candidates),
        names={},
    )


@pytest.mark.parametrize(
    ("the_plan", "probed", "expected"),
    [
        (plan(2, 0, "abc"), {}, Admission("a")),
        (plan(2, 0, "abc"), {"a": True}, Admission("b", ("a",))),
        (plan(2, 0, "abc"), {"a": True, "b": True}, Admission(None, ("a", "b"), ("c",))),
        (plan(2, 0, "abc"), {"a": False}, Admission("b")),
        (plan(2, 0, "abc"), {"a": False, "b": True}, Admission("c", ("b",))),
        (plan(2, 0, "abc"), {"a": False, "b": False, "c": False}, Admission(None)),
        (plan(2, 1, "ab"), {}, Admission("a")),
        (plan(2, 1, "ab"), {"a": True}, Admission(None, ("a",), ("b",))),
        (plan(2, 2, "ab"), {}, Admission(None, (), ("a", "b"))),
        (plan(2, 3, "a"), {}, Admission(None, (), ("a",))),
        (plan(2, 1, "ab", paused=1), {}, Admission(None, (), ("a", "b"))),
        (plan(2, 0, ""), {}, Admission(None)),
    ],
)
def test_next_admission(
    the_plan: ConvergePlan, probed: dict[str, bool], expected: Admission
) -> None:
    assert next_admission(the_plan, probed) == expected


@pytest.mark.parametrize(
    ("reason", "cancelled", "expected"),
    [
        (None, False, Verdict.JOIN),
        ("HTTP 500", False, Verdict.FAILED),
        ("no address on the proxy network (url_mode=network)", False, Verdict.FAILED),
        ("cancelled", True, Verdict.STOPPING),
        (None, True, Verdict.STOPPING),  # healthy, but the sidecar is stopping: never served
    ],
)
def test_admission_verdict(reason: str | None, cancelled: bool, expected: Verdict) -> None:
    assert admission_verdict(reason, cancelled) is expected


@pytest.mark.parametrize(
    ("started", "retired", "surplus", "expected"),
    [
        (0, 0, (), False),
        (1, 0, (), True),
        (0, 1, (), True),
        (0, 0, ("c",), True),
    ],
)
def test_converge_changed_counts(
    started: int, retired: int, surplus: tuple[str, ...], expected: bool
) -> None:
    the_plan = plan_converge(2, [A, B], members("a", "b"), set())
    scale = plan_converge_scale(the_plan, (), None)
    assert converge_changed(the_plan, scale, surplus, started, retired) is expected


def test_converge_changed_when_a_start_failed_but_the_rotation_changed() -> None:
    # a member gone, its replacement unhealthy: nothing started, yet the rotation changed
    the_plan = plan_converge(2, [A], members("a", "x"), set())
    scale = plan_converge_scale(the_plan, (), None)
    assert scale.start == 1
    assert converge_changed(the_plan, scale, (), started=0, retired=0) is True
