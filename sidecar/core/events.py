"""What a Docker event means for an instance and its service. Pure: the events thread
and the reactor execute what `effect_of` decides, nothing else.

Two readers act on one event: the events thread at once (take the instance out of the
rotation within milliseconds, remember that it is on its way out), and the reactor later
(a crash to count, a converge to run). Both parts come from the same decision here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sidecar.core.types import ContainerEvent

# Events after which an instance must not receive traffic, at once.
_LEAVE = frozenset({"die", "stop", "destroy", "pause", "oom"})
# Signals `docker kill` sends to end a container (SIGHUP etc. do not take it out).
FATAL_SIGNALS = frozenset({"9", "15", "2", "3", "SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT"})
# Leaving the rotation for these does not mean the container is going away.
_STAYS = frozenset({"pause", "health_status"})


class Verdict(StrEnum):
    """What the reactor does with the service after the event."""

    IGNORE = "ignore"  # not a served service of ours
    CONVERGE = "converge"  # compare declared with observed and repair
    CRASH = "crash"  # an unexpected death: count it (crash-loop backoff), then converge


@dataclass(frozen=True)
class Effect:
    leave_rotation: bool = False  # out of the rotation now (events thread)
    leaving: bool = False  # on its way out: never admitted again, not counted as a replica
    killed: bool = False  # someone chose to end it (kill/stop): its death is no crash
    back: bool = False  # started again: an ordinary instance once more
    forget: bool = False  # destroyed: no state may point at it any more


def leaves_rotation(ev: ContainerEvent) -> bool:
    if ev.action == "kill":
        return ev.signal in FATAL_SIGNALS
    if ev.action == "health_status":
        return ev.status == "unhealthy"
    return ev.action in _LEAVE


def effect_of(ev: ContainerEvent) -> Effect:
    """The immediate effect on the instance, decided on the events thread."""
    leave = leaves_rotation(ev)
    going = leave and ev.action not in _STAYS
    return Effect(
        leave_rotation=leave,
        leaving=going,
        killed=going and ev.action in ("kill", "stop"),
        back=ev.action == "start",
        forget=ev.action == "destroy",
    )


def verdict_of(ev: ContainerEvent, served: bool, exit_expected: bool, failed: bool) -> Verdict:
    """What the reactor does for the service: `exit_expected` when the sidecar stopped the
    container itself or someone killed/stopped it; `failed` when the service is marked
    failed after a crash loop (nothing replaces it until a build, rollout or command)."""
    if not served:
        return Verdict.IGNORE
    if ev.action in ("die", "oom") and not exit_expected:
        return Verdict.CRASH
    if failed:
        return Verdict.IGNORE
    return Verdict.CONVERGE
