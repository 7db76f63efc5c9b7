"""The decisions, with no I/O: what a project change means, and which builds run next.

The daemon feeds facts in (a new project model, a finished build, changed services) and
executes what comes out; every rule about *what* to do lives here and is table-tested."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from sidecar.core.model import Project, ServiceSpec


class Kind(StrEnum):
    # Ordered by how much they do: a queued job absorbs a lesser request for its service.
    CONVERGE = "converge"  # reach the declared replicas / rotation, replace nothing
    UP = "up"  # create or recreate containers from the current image (not served)
    ROLLOUT = "rollout"  # replace every instance (served: zero downtime) with the current image
    BUILD = "build"  # build the image, then roll out (served) or recreate (not served)
    REMOVE = "remove"  # stop and remove every container of the service


_RANK = {Kind.CONVERGE: 0, Kind.UP: 1, Kind.ROLLOUT: 2, Kind.BUILD: 3}


@dataclass(frozen=True)
class Action:
    kind: Kind
    service: str
    reason: str


def _build_changed(old: ServiceSpec, new: ServiceSpec) -> bool:
    """Context, Dockerfile, args, target, inline Dockerfile...: anything of `build:`."""
    return old.build_digest != new.build_digest or (old.context, old.dockerfile) != (
        new.context,
        new.dockerfile,
    )


def _change_kind(prev: ServiceSpec, svc: ServiceSpec) -> Kind | None:
    if prev.config_digest != svc.config_digest:
        if svc.built and _build_changed(prev, svc):
            return Kind.BUILD
        return Kind.ROLLOUT if svc.served else Kind.UP
    if prev.serve_digest != svc.serve_digest or prev.served != svc.served:
        return Kind.CONVERGE
    return None


def plan_project_change(old: Project | None, new: Project) -> list[Action]:
    """What to do when the compose file changed from `old` to `new`. A service whose
    x-sidecar is invalid is left exactly as it is (the caller keeps its old definition)."""
    before = dict(old.services) if old else {}
    actions: list[Action] = []
    for name in sorted(before.keys() - new.services.keys()):
        actions.append(Action(Kind.REMOVE, name, "removed from the compose file"))
    for name, svc in sorted(new.services.items()):
        prev = before.get(name)
        if svc.serve_error:
            continue
        if prev is None:
            kind = Kind.BUILD if svc.built else (Kind.CONVERGE if svc.served else Kind.UP)
            actions.append(Action(kind, name, "added to the compose file"))
            continue
        change = _change_kind(prev, svc)
        if change is not None:
            actions.append(Action(change, name, "definition changed"))
    return actions


def plan_orphans(project: Project, running_services: Iterable[str]) -> list[Action]:
    """Containers of services the compose file no longer has (e.g. removed while we were down)."""
    return [
        Action(Kind.REMOVE, name, "not in the compose file")
        for name in sorted(set(running_services) - project.services.keys())
    ]


@dataclass
class JobQueue:
    """Which services have a job running, which wait, which need one more after the current.

    Invariants: a service has at most one job at a time; requests that arrive while it runs
    queue exactly one follow-up (the biggest kind requested), however many arrive; at most
    `concurrency` jobs run at once; waiting services start in the order they were requested."""

    concurrency: int
    running: dict[str, Kind] = field(default_factory=dict)
    waiting: dict[str, tuple[Kind, str]] = field(default_factory=dict)  # insertion-ordered
    followups: dict[str, tuple[Kind, str]] = field(default_factory=dict)

    @staticmethod
    def _merge(queue: dict[str, tuple[Kind, str]], service: str, kind: Kind, reason: str) -> None:
        current = queue.get(service)
        if current is None or _RANK[kind] > _RANK[current[0]]:
            queue[service] = (kind, reason)

    def request(self, service: str, reason: str, kind: Kind = Kind.BUILD) -> None:
        if service in self.running:
            self._merge(self.followups, service, kind, reason)
        else:
            self._merge(self.waiting, service, kind, reason)

    def start(self) -> list[tuple[str, Kind, str]]:
        """Jobs to start now (they move to `running`)."""
        started = []
        for service in list(self.waiting):
            if len(self.running) >= self.concurrency:
                break
            kind, reason = self.waiting.pop(service)
            self.running[service] = kind
            started.append((service, kind, reason))
        return started

    def finished(self, service: str) -> None:
        self.running.pop(service, None)
        follow = self.followups.pop(service, None)
        if follow is not None:
            self._merge(self.waiting, service, *follow)

    def forget(self, service: str) -> None:
        """The service is gone: drop any queued work (a running job finishes on its own)."""
        self.waiting.pop(service, None)
        self.followups.pop(service, None)

    @property
    def idle(self) -> bool:
        return not (self.running or self.waiting)


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


@dataclass(frozen=True)
class Batch:
    """One step of a rollout: start `start` new instances, then retire these old ones."""

    start: int
    retire: tuple[str, ...]


def plan_rollout(old: list[str], replicas: int, parallelism: int) -> list[Batch]:
    """Replace every instance in `old` (oldest first) by `replicas` new ones, `parallelism`
    at a time. Each batch starts new instances before retiring old ones (the executor flips
    the order for stop-first), so capacity never drops below min(len(old), replicas)."""
    batches: list[Batch] = []
    remaining_new, queue = replicas, list(old)
    while remaining_new > 0 or queue:
        start = min(parallelism, remaining_new)
        retire = tuple(queue[:parallelism])
        queue = queue[parallelism:]
        remaining_new -= start
        batches.append(Batch(start, retire))
    return batches


def plan_scale(current: list[str], replicas: int) -> Batch:
    """Reach `replicas` without replacing anything: start the missing instances, or retire
    the newest extra ones (the oldest have proven themselves longest)."""
    missing = replicas - len(current)
    if missing >= 0:
        return Batch(missing, ())
    return Batch(0, tuple(current[replicas:]))


@dataclass
class CrashLoop:
    """Restart pacing for instances that die on their own: the first replacement is
    immediate, later ones back off exponentially (capped); `max_failures` deaths within
    `window` seconds mark the service failed instead of restarting it forever."""

    base: float = 1.0
    cap: float = 30.0
    window: float = 120.0
    max_failures: int = 5
    deaths: dict[str, list[float]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)

    def record(self, service: str, now: float) -> float | None:
        """A death: seconds to wait before replacing it, or None when the service has just
        been marked failed (stop replacing until `reset`)."""
        recent = [t for t in self.deaths.get(service, []) if now - t < self.window]
        recent.append(now)
        self.deaths[service] = recent
        if len(recent) >= self.max_failures:
            self.failed.add(service)
            return None
        if len(recent) == 1:
            return 0.0
        return float(min(self.cap, self.base * 2 ** (len(recent) - 2)))

    def reset(self, service: str) -> None:
        """A new build, rollout or explicit command: give the service a fresh start."""
        self.deaths.pop(service, None)
        self.failed.discard(service)
