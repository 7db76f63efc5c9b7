"""What a command does to the reactor's state, decided without I/O: the paused set, the
replica overrides, which instance a `destroy` takes. `runtime.control` executes it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sidecar.core.commands import Action, CommandError

ALL = "*"
_EXCEPT = "!"  # Redis member for a service resumed while everything else stays paused


@dataclass(frozen=True)
class PauseState:
    """Whose file changes are not built. `everything` with `followed` exceptions (pause all,
    then resume web), or just the `paused` names."""

    everything: bool = False
    paused: frozenset[str] = field(default_factory=frozenset)
    followed: frozenset[str] = field(default_factory=frozenset)

    def is_paused(self, service: str) -> bool:
        if self.everything:
            return service not in self.followed
        return service in self.paused

    def pause(self, target: str) -> PauseState:
        if target == ALL:
            return PauseState(everything=True)
        if self.everything:
            return PauseState(True, frozenset(), self.followed - {target})
        return PauseState(False, self.paused | {target})

    def resume(self, target: str) -> PauseState:
        if target == ALL:
            return PauseState()
        if self.everything:
            return PauseState(True, frozenset(), self.followed | {target})
        return PauseState(False, self.paused - {target})

    def members(self) -> set[str]:
        """The Redis set that stores it: `*` plus `!name` exceptions, or the names."""
        if self.everything:
            return {ALL} | {_EXCEPT + n for n in self.followed}
        return set(self.paused)

    @classmethod
    def from_members(cls, members: Iterable[str]) -> PauseState:
        names = set(members)
        if ALL in names:
            followed = {n[1:] for n in names if n.startswith(_EXCEPT)}
            return cls(True, frozenset(), frozenset(followed))
        return cls(False, frozenset(n for n in names if not n.startswith(_EXCEPT)))

    def describe(self, target: str) -> str:
        """The command's answer: what is now true of `target`."""
        if target == ALL:
            return "file changes of every service are " + (
                "ignored" if self.everything else "followed"
            )
        return f"file changes of {target} are " + (
            "ignored" if self.is_paused(target) else "followed"
        )


def replica_target(action: Action, current: int, requested: int | None) -> int:
    """The replica count a scale/spawn/destroy asks for, from the current count."""
    if action is Action.SCALE:
        assert requested is not None
        return requested
    if action is Action.SPAWN:
        return current + 1
    if action is Action.DESTROY:
        return current - 1
    raise ValueError(f"{action} sets no replica count")


def destroy_pick(service: str, instances: Iterable[str], named: str | None) -> str | None:
    """The instance a `destroy` retires first: the named one, which must be an instance of
    the service (None: the scale-in rule picks, the newest goes)."""
    if not named:
        return None
    if named not in set(instances):
        raise CommandError(f"{named} is not an instance of {service}")
    return named


def replica_counts(
    declared: Mapping[str, int], overrides: Mapping[str, int], served: Iterable[str]
) -> dict[str, int]:
    """Replicas each served service has now: a command's override, else the compose file's."""
    return {n: overrides.get(n, declared[n]) for n in served}
