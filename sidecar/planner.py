"""The decisions, with no I/O: what a project change means, and which builds run next.

The daemon feeds facts in (a new project model, a finished build, changed services) and
executes what comes out; every rule about *what* to do lives here and is table-tested."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from sidecar.model import Project, ServiceSpec


class Kind(StrEnum):
    BUILD = "build"  # build the image, then recreate the service's containers
    UP = "up"  # create or recreate containers from the current image
    REMOVE = "remove"  # stop and remove every container of the service


@dataclass(frozen=True)
class Action:
    kind: Kind
    service: str
    reason: str


def _build_changed(old: ServiceSpec, new: ServiceSpec) -> bool:
    return (old.context, old.dockerfile) != (new.context, new.dockerfile)


def plan_project_change(old: Project | None, new: Project) -> list[Action]:
    """What to do when the compose file changed from `old` to `new`."""
    before = dict(old.services) if old else {}
    actions: list[Action] = []
    for name in sorted(before.keys() - new.services.keys()):
        actions.append(Action(Kind.REMOVE, name, "removed from the compose file"))
    for name, svc in sorted(new.services.items()):
        prev = before.get(name)
        if prev is None:
            kind = Kind.BUILD if svc.built else Kind.UP
            actions.append(Action(kind, name, "added to the compose file"))
        elif prev.config_digest != svc.config_digest:
            kind = Kind.BUILD if svc.built and _build_changed(prev, svc) else Kind.UP
            actions.append(Action(kind, name, "definition changed"))
    return actions


def plan_orphans(project: Project, running_services: Iterable[str]) -> list[Action]:
    """Containers of services the compose file no longer has (e.g. removed while we were down)."""
    return [
        Action(Kind.REMOVE, name, "not in the compose file")
        for name in sorted(set(running_services) - project.services.keys())
    ]


@dataclass
class BuildQueue:
    """Which services build now, which wait, which need one more build after the current one.

    Invariants: a service builds at most once at a time; a change that arrives while it
    builds queues exactly one follow-up, however many changes arrive; at most `concurrency`
    builds run at once; waiting services start in the order they were requested."""

    concurrency: int
    building: set[str] = field(default_factory=set)
    waiting: dict[str, str] = field(default_factory=dict)  # service -> reason, insertion-ordered
    followups: dict[str, str] = field(default_factory=dict)

    def request(self, service: str, reason: str) -> None:
        if service in self.building:
            self.followups.setdefault(service, reason)
        else:
            self.waiting.setdefault(service, reason)

    def start(self) -> list[tuple[str, str]]:
        """Services to start building now (they move to `building`)."""
        started = []
        for service in list(self.waiting):
            if len(self.building) >= self.concurrency:
                break
            started.append((service, self.waiting.pop(service)))
            self.building.add(service)
        return started

    def finished(self, service: str) -> None:
        self.building.discard(service)
        reason = self.followups.pop(service, None)
        if reason is not None:
            self.waiting.setdefault(service, reason)

    def forget(self, service: str) -> None:
        """The service is gone: drop any queued work (an in-flight build finishes on its own)."""
        self.waiting.pop(service, None)
        self.followups.pop(service, None)

    @property
    def idle(self) -> bool:
        return not (self.building or self.waiting)


Digests = dict[str, "str | None"]


def changed_digests(observed: Digests, known: Digests) -> Digests:
    """The entries of `observed` that differ from what is `known` (None on either side means
    the file does not exist). A touch or a same-bytes rewrite yields nothing."""
    return {rel: d for rel, d in observed.items() if known.get(rel) != d}


def scan_diff(scanned: dict[str, str], committed: dict[str, str]) -> Digests:
    """Start-up: files that differ from the last good build, including deleted ones."""
    out: Digests = {rel: d for rel, d in scanned.items() if committed.get(rel) != d}
    out.update({rel: None for rel in committed.keys() - scanned.keys()})
    return out
