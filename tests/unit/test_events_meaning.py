"""What a Docker event means (sidecar.core.events): tables of plain data."""

from __future__ import annotations

import pytest

from sidecar.core.events import Effect, Verdict, effect_of, verdict_of
from sidecar.core.types import ContainerEvent


def ev(action: str, status: str = "", signal: str = "", exit_code: str = "") -> ContainerEvent:
    return ContainerEvent(action, "c1", "web", "p-web-1", status, signal, exit_code)


@pytest.mark.parametrize(
    ("event", "effect"),
    [
        (ev("kill", signal="9"), Effect(leave_rotation=True, leaving=True, killed=True)),
        (ev("kill", signal="15"), Effect(leave_rotation=True, leaving=True, killed=True)),
        (ev("kill", signal="SIGKILL"), Effect(leave_rotation=True, leaving=True, killed=True)),
        (ev("kill", signal="1"), Effect()),  # SIGHUP: a reload, not an ending
        (ev("kill", signal="10"), Effect()),
        (ev("stop"), Effect(leave_rotation=True, leaving=True, killed=True)),
        (ev("die", exit_code="1"), Effect(leave_rotation=True, leaving=True)),
        (ev("oom"), Effect(leave_rotation=True, leaving=True)),
        (ev("destroy"), Effect(leave_rotation=True, leaving=True, forget=True)),
        (ev("pause"), Effect(leave_rotation=True)),  # out of traffic, but it stays
        (ev("unpause"), Effect()),
        (ev("health_status", status="unhealthy"), Effect(leave_rotation=True)),
        (ev("health_status", status="healthy"), Effect()),
        (ev("start"), Effect(back=True)),
    ],
)
def test_effect_of(event: ContainerEvent, effect: Effect) -> None:
    assert effect_of(event) == effect


@pytest.mark.parametrize(
    ("event", "served", "expected", "failed", "verdict"),
    [
        (ev("die"), False, False, False, Verdict.IGNORE),
        (ev("die"), True, False, False, Verdict.CRASH),
        (ev("oom"), True, False, False, Verdict.CRASH),
        (ev("die"), True, True, False, Verdict.CONVERGE),  # we, or someone, stopped it
        (ev("die"), True, False, True, Verdict.CRASH),  # still counted while failed
        (ev("start"), True, False, True, Verdict.IGNORE),  # failed: nothing replaces it
        (ev("start"), True, False, False, Verdict.CONVERGE),
        (ev("destroy"), True, False, False, Verdict.CONVERGE),
        (ev("health_status", status="unhealthy"), True, False, False, Verdict.CONVERGE),
    ],
)
def test_verdict_of(
    event: ContainerEvent, served: bool, expected: bool, failed: bool, verdict: Verdict
) -> None:
    assert verdict_of(event, served, expected, failed) is verdict
