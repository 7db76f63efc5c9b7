"""The decisions, with no I/O: what a project change means, and which builds run next.

The daemon feeds facts in (a new project model, a finished build, changed services) and
executes what comes out; every rule about *what* to do lives here and is table-tested."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from sidecar.core.model import Project, ServiceSpec


class Kind(StrEnum):
    # Ordered by how much they do: a queued job absorbs a lesser request for its service.
    # develop.watch's sync/restart/exec; its work waits in the reactor until a SYNC job
    # takes it, so a bigger job absorbing the request loses nothing (a SYNC follows it)
    SYNC = "sync"
    CONVERGE = "converge"  # reach the declared replicas / rotation, replace nothing
    UP = "up"  # create or recreate containers from the current image (not served)
    ROLLOUT = "rollout"  # replace every instance (served: zero downtime) with the current image
    BUILD = "build"  # build the image, then roll out (served) or recreate (not served)
    # an image-only service: pull its image, then roll out / recreate only if it changed
    PULL = "pull"
    REMOVE = "remove"  # stop and remove every container of the service


_RANK = {
    Kind.SYNC: -1,
    Kind.CONVERGE: 0,
    Kind.UP: 1,
    Kind.ROLLOUT: 2,
    Kind.BUILD: 3,
    Kind.PULL: 3,  # never beside BUILD: a service is built or pulled, not both
}


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
        if svc.invalid:
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


class Lane(StrEnum):
    """Where a job runs: repairs (converges) never wait behind slow builds."""

    WORK = "work"  # build, rollout, up: bounded by build_concurrency
    REPAIR = "repair"  # converge: replace a crashed instance, re-admit, scale
    SYNC = "sync"  # develop.watch sync/restart/exec: milliseconds, never behind a build


def lane_of(kind: Kind) -> Lane:
    if kind is Kind.SYNC:
        return Lane.SYNC
    return Lane.REPAIR if kind is Kind.CONVERGE else Lane.WORK


class Job(NamedTuple):
    service: str
    kind: Kind
    reason: str
    # quiet jobs (periodic resyncs, Docker-event converges) stay out of the events stream
    # unless they repair something; a user's request is never quiet
    quiet: bool = False


def _merged(current: Job | None, new: Job) -> Job:
    """One request out of two for the same service: the bigger kind, loud if either is."""
    if current is None:
        return new
    quiet = current.quiet and new.quiet
    bigger = new if _RANK[new.kind] > _RANK[current.kind] else current
    if bigger.quiet and not quiet:  # the loud request's reason says why it runs
        loud = new if current.quiet else current
        return bigger._replace(reason=loud.reason, quiet=False)
    return bigger


@dataclass
class JobQueue:
    """Which services have a job running, which wait, which need one more after the current.

    Invariants: a service has at most one job at a time; requests that arrive while it runs
    queue exactly one follow-up (the biggest kind requested), however many arrive; at most
    `concurrency` work jobs and `repair_concurrency` converges run at once, each lane on its
    own, so two slow builds never delay replacing a crashed instance; waiting services start
    in the order they were requested."""

    concurrency: int
    repair_concurrency: int = 2
    sync_concurrency: int = 4
    running: dict[str, Kind] = field(default_factory=dict)
    waiting: dict[str, Job] = field(default_factory=dict)  # insertion-ordered
    followups: dict[str, Job] = field(default_factory=dict)

    def request(
        self, service: str, reason: str, kind: Kind = Kind.BUILD, quiet: bool = False
    ) -> None:
        queue = self.followups if service in self.running else self.waiting
        queue[service] = _merged(queue.get(service), Job(service, kind, reason, quiet))

    def _busy(self, lane: Lane) -> int:
        return sum(1 for k in self.running.values() if lane_of(k) is lane)

    def start(self) -> list[Job]:
        """Jobs to start now (they move to `running`)."""
        room = {
            Lane.WORK: self.concurrency - self._busy(Lane.WORK),
            Lane.REPAIR: self.repair_concurrency - self._busy(Lane.REPAIR),
            Lane.SYNC: self.sync_concurrency - self._busy(Lane.SYNC),
        }
        started = []
        for service, job in list(self.waiting.items()):
            lane = lane_of(job.kind)
            if room[lane] <= 0:
                continue
            room[lane] -= 1
            del self.waiting[service]
            self.running[service] = job.kind
            started.append(job)
        return started

    def finished(self, service: str) -> None:
        self.running.pop(service, None)
        follow = self.followups.pop(service, None)
        if follow is not None:
            self.waiting[service] = _merged(self.waiting.get(service), follow)

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
