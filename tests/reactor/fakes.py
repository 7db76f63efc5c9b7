"""In-memory fakes of the project's own ports (sidecar.core.ports): Docker/compose, the
Redis store, a clock, an inline executor and a health prober. They hold plain state that
the tests read back the way a user would read Docker and Redis."""

from __future__ import annotations

import io
import itertools
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sidecar.core.errors import CannotDelete, RegistryError, StoreUnavailable
from sidecar.core.keys import Keys, TraefikKeys
from sidecar.core.model import Project, ProjectError, ServiceSpec
from sidecar.core.serving import HealthSpec, RetrySpec
from sidecar.core.types import CommandResult, ExecResult, Instance
from sidecar.core.versions import Version


class DockerAway(Exception):
    """What the fake raises while the daemon is 'away' (as python-on-whales would)."""


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1.7e9 + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class InlineExecutor:
    """Runs a job at once on the reactor's thread; `hold` keeps jobs until `release`."""

    def __init__(self) -> None:
        self.hold = False
        self.held: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self.ran = 0

    def submit(self, fn: Callable[..., object], /, *args: Any) -> object:
        if self.hold:
            self.held.append((fn, args))
        else:
            self.ran += 1
            fn(*args)
        return None

    def release(self) -> None:
        held, self.held = self.held, []
        for fn, args in held:
            self.ran += 1
            fn(*args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.held.clear()


@dataclass
class FakeDocker:
    """One compose project's containers, in memory."""

    project_name: str
    model: Project | None = None
    load_error: str | None = None
    own_services: frozenset[str] = frozenset()
    failing_builds: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)  # services with a built image
    away: bool = False
    containers: dict[str, Instance] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    # what develop.watch put into each container: id -> container path -> content (files
    # of the image are not modelled: a path absent here holds the image's copy)
    files: dict[str, dict[str, bytes | None]] = field(default_factory=dict)
    copies: list[tuple[str, int]] = field(default_factory=list)  # (container, tar entries)
    no_rm: set[str] = field(default_factory=set)  # services whose image cannot delete
    execs: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    exec_codes: dict[str, int] = field(default_factory=dict)  # command[0] -> exit code
    restarts: list[str] = field(default_factory=list)
    # how many builds each service's image has had, and which one each container runs:
    # `up` keeps a running container that already runs the current image, as compose does
    generation: dict[str, int] = field(default_factory=dict)
    kept: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> tag -> image
    pushed: set[str] = field(default_factory=set)  # services with a newer image to pull
    pulled_digest: dict[str, str] = field(default_factory=dict)  # service -> digest it runs
    registry_digest: dict[str, str] = field(default_factory=dict)  # what a pull brings
    failing_pulls: set[str] = field(default_factory=set)
    failing_pushes: set[str] = field(default_factory=set)
    pushed_to: list[tuple[str, str]] = field(default_factory=list)  # (target, digest)
    pointed: dict[str, str] = field(default_factory=dict)  # service -> image (a rollback)
    made_from: dict[str, int] = field(default_factory=dict)
    # Docker events of what the fake does itself (restarts): (action, container, service)
    on_event: Callable[[str, str, str], None] | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _check(self, what: str, arg: str = "") -> None:
        if self.away:
            raise DockerAway("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
        self.calls.append((what, arg))

    def _new(self, service: str) -> Instance:
        n = next(self._ids)
        number = 1 + max((i.number for i in self.instances(service)), default=0)
        inst = Instance(
            id=f"{n:064x}",
            name=f"{self.project_name}-{service}-{number}",
            number=number,
            image=f"{self.project_name}-{service}",
            state="running",
            health=None,
            ips={f"{self.project_name}_default": f"10.0.{n // 250}.{n % 250 + 2}"},
            host_ports={},
            created=float(n),
        )
        self.containers[inst.id] = inst
        self.made_from[inst.id] = self.generation.get(service, 0)
        return inst

    # --- DockerPort ----------------------------------------------------------------------
    def load(self) -> Project:
        self._check("load")
        if self.load_error:
            raise ProjectError(self.load_error)
        assert self.model is not None
        return self.model

    def build(self, service: str, cancel: threading.Event, timeout: float) -> CommandResult:
        self._check("build", service)
        if service in self.failing_builds:
            return CommandResult(False, 0.01, "Step 2/2 : RUN false\nbuild failed")
        self.images.add(service)
        self.generation[service] = self.generation.get(service, 0) + 1
        self.pointed.pop(service, None)  # the new build is what the name points at
        return CommandResult(True, 0.01, "built")

    def pull(self, service: str, cancel: threading.Event, timeout: float) -> CommandResult:
        """A registry with `pushed` services holding a newer image than the local one."""
        self._check("pull", service)
        if service in self.failing_pulls:
            return CommandResult(False, 0.01, "Error response from daemon: connection refused")
        if service in self.pushed:
            self.pushed.discard(service)
            if service in self.registry_digest:
                self.pulled_digest[service] = self.registry_digest[service]
            self.images.add(service)
            self.generation[service] = self.generation.get(service, 0) + 1
            self.pointed.pop(service, None)
        return CommandResult(True, 0.01, "pulled")

    def push(self, svc: ServiceSpec, target: str) -> str:
        self._check("push", svc.name)
        if svc.name in self.failing_pushes:
            raise RuntimeError("denied: requested access to the resource is denied")
        digest = f"sha256:{svc.name}{self.generation.get(svc.name, 0):0>58}"
        self.pushed_to.append((target, digest))
        return digest

    def repo_digests(self, svc: ServiceSpec) -> list[str]:
        self._check("repo_digests", svc.name)
        repository = (svc.image or svc.name).rsplit(":", 1)[0]
        return [f"{repository}@{self.pulled_digest.get(svc.name, 'sha256:' + '0' * 64)}"]

    def runs_image(self, svc: ServiceSpec) -> bool:
        self._check("runs_image", svc.name)
        running = self.running(svc.name)
        current = self.generation.get(svc.name, 0)
        return bool(running) and all(self.made_from.get(i.id) == current for i in running)

    def build_and_up(self, service: str, cancel: threading.Event, timeout: float) -> CommandResult:
        built = self.build(service, cancel, timeout)
        if not built.ok:
            return built
        self._recreate(service)
        return CommandResult(True, 0.02, "recreated", touched=True)

    def _recreate(self, service: str) -> None:
        for inst in self.instances(service):
            del self.containers[inst.id]
        self._new(service)

    def up(self, services: list[str], build: bool = False) -> CommandResult:
        self._check("up", ",".join(services))
        for svc in services:
            if build:
                self.images.add(svc)
            current = self.generation.get(svc, 0)
            running = self.running(svc)
            if running and all(self.made_from.get(i.id) == current for i in running):
                continue  # up to date: compose leaves it alone
            self._recreate(svc)
        return CommandResult(True, 0.01, "up")

    def scale(self, service: str, replicas: int) -> CommandResult:
        self._check("scale", f"{service}={replicas}")
        while len(self.instances(service)) < replicas:
            self._new(service)
        return CommandResult(True, 0.01, "scaled")

    def instances(self, service: str) -> list[Instance]:
        self._check("instances", service)
        mine = [i for i in self.containers.values() if i.image == f"{self.project_name}-{service}"]
        return sorted(mine, key=lambda i: (i.created, i.number))

    def instance(self, container_id: str) -> Instance | None:
        self._check("instance", container_id)
        return self.containers.get(container_id)

    def has_image(self, svc: ServiceSpec) -> bool:
        self._check("has_image", svc.name)
        return svc.name in self.images

    def image_id(self, svc: ServiceSpec) -> str:
        """A stand-in id per build of the service's image (or the one pointed at since)."""
        self._check("image_id", svc.name)
        pointed = self.pointed.get(svc.name)
        return pointed or f"sha256:{svc.name}-{self.generation.get(svc.name, 0)}"

    def keep_image(self, svc: ServiceSpec, image_id: str, tag: str) -> None:
        self._check("keep_image", svc.name)
        self.kept.setdefault(svc.name, {})[tag] = image_id

    def image_tags(self, svc: ServiceSpec) -> list[str]:
        self._check("image_tags", svc.name)
        return sorted(self.kept.get(svc.name, {}))

    def drop_image_tag(self, svc: ServiceSpec, tag: str) -> None:
        self._check("drop_image_tag", svc.name)
        self.kept.get(svc.name, {}).pop(tag, None)

    def point_image(self, svc: ServiceSpec, image_id: str) -> None:
        self._check("point_image", svc.name)
        self.pointed[svc.name] = image_id

    def stop_remove(self, ids: list[str], timeout: int = 10) -> None:
        self._check("stop_remove", ",".join(i[:12] for i in ids))
        for cid in ids:
            self.containers.pop(cid, None)

    def logs_tail(self, container_id: str, lines: int = 20) -> str:
        return ""

    def services_with_containers(self) -> set[str]:
        self._check("services_with_containers")
        return {i.image.removeprefix(f"{self.project_name}-") for i in self.containers.values()}

    def running_services(self) -> set[str]:
        return {
            i.image.removeprefix(f"{self.project_name}-")
            for i in self.containers.values()
            if i.state == "running"
        }

    def remove_service(self, service: str) -> int:
        gone = self.instances(service)
        for inst in gone:
            del self.containers[inst.id]
        return len(gone)

    def _service_of(self, cid: str) -> str:
        return self.containers[cid].image.removeprefix(f"{self.project_name}-")

    def running_instances(self, service: str) -> list[Instance]:
        return self.running(service)

    def copy_in(self, container_id: str, tar: bytes) -> None:
        self._check("copy_in", container_id[:12])
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            members = t.getmembers()
            got = self.files.setdefault(container_id, {})
            for m in members:
                f = t.extractfile(m) if m.isreg() else None
                got["/" + m.name] = f.read() if f else m.linkname.encode()
        self.copies.append((container_id, len(members)))

    def delete_in(self, container_id: str, paths: list[str]) -> None:
        self._check("delete_in", container_id[:12])
        if self._service_of(container_id) in self.no_rm:
            raise CannotDelete("the image has no rm (nor busybox)")
        got = self.files.setdefault(container_id, {})
        for p in paths:
            got[p] = None

    def exec_in(
        self,
        container_id: str,
        command: list[str],
        user: str | None = None,
        privileged: bool = False,
        workdir: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> ExecResult:
        self._check("exec_in", container_id[:12])
        self.execs.append((container_id, tuple(command)))
        code = self.exec_codes.get(command[0], 0)
        return ExecResult(code, "" if code == 0 else f"{command[0]}: failed")

    def restart_instance(self, container_id: str, timeout: float) -> None:
        self._check("restart_instance", container_id[:12])
        self.restarts.append(container_id)
        if self.on_event is not None:
            service = self._service_of(container_id)
            for action in ("kill", "die", "start"):
                self.on_event(action, container_id, service)

    # --- what a test does by hand ----------------------------------------------------------
    def content(self, cid: str, path: str) -> bytes | None:
        """What the container holds at `path` as far as the sync went (None: deleted or
        never synced)."""
        return self.files.get(cid, {}).get(path)

    def set_state(self, cid: str, state: str) -> Instance:
        inst = replace(self.containers[cid], state=state)
        self.containers[cid] = inst
        return inst

    def running(self, service: str) -> list[Instance]:
        return [i for i in self.instances(service) if i.state == "running"]


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class FakeStore:
    """The sidecar's Redis state as plain dicts; `down()` / `up(empty=...)` play Redis
    going away and coming back (empty: restarted without persistence)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.available = True
        self.reachable = True
        self.flush()

    def flush(self) -> None:
        self.sentinel = False
        self.beat: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []
        self.builds: dict[str, dict[str, Any]] = {}
        self.streams: dict[str, list[tuple[str, dict[str, str]]]] = {}  # the hubs
        self.git: dict[str, str] = {}
        self.drift: dict[str, str] = {}
        self.hashes: dict[str, dict[str, str]] = {}
        self.rotations: dict[str, list[str]] = {}
        self.instance_tables: dict[str, dict[str, str]] = {}
        self.routers: dict[str, str] = {}
        self.retries: dict[str, RetrySpec | None] = {}
        self.desired: dict[str, int] = {}
        self.paused: set[str] = set()
        self.stream: list[tuple[str, dict[Any, Any]]] = []
        self.delivered: set[str] = set()
        self.acked: list[str] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.project_info: dict[str, str] = {}
        self.synced: dict[str, dict[str, str | None]] = {}
        self.sync_gens: dict[str, tuple[int, dict[str, int]]] = {}
        self.version_records: dict[str, list[Version]] = {}  # service -> kept, oldest first

    def down(self) -> None:
        self.reachable = False

    def up(self, empty: bool = False) -> None:
        self.reachable = True
        if empty:
            self.flush()

    def _call(self) -> None:
        if not self.available or not self.reachable:
            self.available = False
            raise StoreUnavailable("redis is unavailable")

    # --- liveness --------------------------------------------------------------------------
    def probe(self) -> bool:
        if self.reachable:
            self.available = True
        return self.reachable

    def heartbeat(self, started: float, ttl_s: float, threads: Mapping[str, str]) -> bool:
        self._call()
        self.beat = {"started": started, "threads": dict(threads)}
        lost, self.sentinel = not self.sentinel, True
        return lost

    def clear_heartbeat(self) -> None:
        self._call()
        self.beat = None

    def enable_keyspace_events(self) -> None:
        self._call()

    # --- project ---------------------------------------------------------------------------
    def publish_project(self, project: Project, workspace: str) -> None:
        self._call()
        self.project_info = {"name": project.name, "services": ",".join(project.services)}

    def project_load_failed(self, error: str) -> None:
        self._call()
        self.project_info["load_error"] = error

    def forget_service(self, name: str) -> None:
        self._call()
        for table in (self.builds, self.hashes, self.rotations, self.instance_tables):
            table.pop(name, None)

    def record_build(self, service: str, fields: Mapping[str, Any]) -> None:
        self._call()
        self.builds.setdefault(service, {}).update(fields)

    def event(self, kind: str, service: str = "", **fields: Any) -> None:
        self._call()
        self.events.append({"kind": kind, "service": service, **fields})

    # --- git delivery ----------------------------------------------------------------------
    def newest_entry(self, stream: str) -> str:
        self._call()
        entries = self.streams.get(stream, [])
        return entries[-1][0] if entries else "0-0"

    def read_entries(
        self, stream: str, after: str, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        self._call()
        entries = self.streams.get(stream, [])
        found = [(i, dict(f)) for i, f in entries if _stream_id(i) > _stream_id(after)]
        if not found and block_ms:
            time.sleep(0.002)  # a thread reading in a loop must not spin
        return found

    def add_entry(self, stream: str, fields: Mapping[str, str]) -> str:
        entries = self.streams.setdefault(stream, [])
        entry_id = f"{len(entries) + 1}-0"
        entries.append((entry_id, dict(fields)))
        return entry_id

    def record_drift(self, report: Mapping[str, str], at: float) -> None:
        self._call()
        self.drift = {**report, "at": f"{at:.3f}"}

    def record_git(self, fields: Mapping[str, str]) -> None:
        self._call()
        self.git.update(fields)

    # --- versions ----------------------------------------------------------------------------
    def last_version(self, service: str) -> Version | None:
        self._call()
        kept = self.version_records.get(service)
        return kept[-1] if kept else None

    def versions(self, service: str) -> list[Version]:
        self._call()
        return list(self.version_records.get(service, []))

    def record_version(self, version: Version, keep: int) -> None:
        self._call()
        kept = self.version_records.setdefault(version.service, [])
        kept[:] = [*kept, version][-keep:]

    # --- hashes ------------------------------------------------------------------------------
    def has_hashes(self, service: str) -> bool:
        self._call()
        return service in self.hashes

    def all_hashes(self, service: str) -> dict[str, str]:
        self._call()
        return dict(self.hashes.get(service, {}))

    def get_hashes(self, service: str, rels: Iterable[str]) -> dict[str, str | None]:
        self._call()
        mine = self.hashes.get(service, {})
        return {r: mine.get(r) for r in rels}

    def commit_hashes(self, service: str, updates: Mapping[str, str | None]) -> None:
        self._call()
        mine = self.hashes.setdefault(service, {})
        for rel, digest in updates.items():
            if digest is None:
                mine.pop(rel, None)
            else:
                mine[rel] = digest

    def hashes_under(self, service: str, prefix: str) -> list[str]:
        self._call()
        return [r for r in self.hashes.get(service, {}) if r.startswith(prefix)]

    # --- rotation ------------------------------------------------------------------------------
    def publish_instances(self, service: str, instances: Mapping[str, str]) -> None:
        self._call()
        self.instance_tables[service] = dict(instances)

    def publish_rotation(
        self,
        service: str,
        urls: list[str],
        instances: Mapping[str, str],
        traefik: TraefikKeys,
        rule: str,
        entrypoints: tuple[str, ...],
        retry: RetrySpec | None = None,
    ) -> None:
        self._call()
        self.rotations[service] = list(urls)
        self.retries[service] = retry
        self.instance_tables[service] = dict(instances)
        if urls or entrypoints:
            self.routers[service] = rule
        else:
            self.routers.pop(service, None)

    # --- commands ------------------------------------------------------------------------------
    def add_command(self, **fields: str) -> str:
        entry_id = f"{len(self.stream) + 1}-0"
        self.stream.append((entry_id, {k.encode(): v.encode() for k, v in fields.items()}))
        return entry_id

    def ensure_group(self) -> None:
        self._call()

    def read_commands(self, pending: bool, block_ms: int) -> list[tuple[str, dict[Any, Any]]]:
        self._call()
        new = [(e, f) for e, f in self.stream if e not in self.delivered]
        self.delivered.update(e for e, _ in new)
        return new

    def finish_command(
        self, entry_id: str, command_id: str, result: Mapping[str, Any], ttl_s: int
    ) -> None:
        self._call()
        self.results[command_id] = dict(result)
        self.acked.append(entry_id)

    def ack_command(self, entry_id: str) -> None:
        self._call()
        self.acked.append(entry_id)

    def command_result(self, command_id: str) -> dict[str, Any] | None:
        self._call()
        return self.results.get(command_id)

    def set_desired(self, service: str, replicas: int | None) -> None:
        self._call()
        if replicas is None:
            self.desired.pop(service, None)
        else:
            self.desired[service] = replicas

    def all_desired(self, services: Iterable[str]) -> dict[str, int]:
        self._call()
        return {s: self.desired[s] for s in services if s in self.desired}

    def paused_members(self) -> set[str]:
        self._call()
        return set(self.paused)

    def sync_record(self, service: str) -> tuple[dict[str, str | None], int, dict[str, int]]:
        self._call()
        gen, containers = self.sync_gens.get(service, (0, {}))
        return dict(self.synced.get(service, {})), gen, dict(containers)

    def save_sync_record(
        self,
        service: str,
        files: Mapping[str, str | None],
        gen: int,
        containers: Mapping[str, int],
        whole: bool,
    ) -> None:
        self._call()
        record = {} if whole else self.synced.get(service, {})
        self.synced[service] = {**record, **files}
        self.sync_gens[service] = (gen, dict(containers))

    def set_paused_members(self, members: set[str]) -> None:
        self._call()
        self.paused = set(members)

    # --- reading back ------------------------------------------------------------------------
    def kinds(self, service: str | None = None) -> list[str]:
        return [e["kind"] for e in self.events if service is None or e["service"] == service]


class FakeProber:
    """Health probes: every instance is healthy unless its id is in `unhealthy`."""

    def __init__(self) -> None:
        self.unhealthy: set[str] = set()
        self.probed: list[tuple[str, int]] = []

    def __call__(
        self,
        target: tuple[str, int],
        spec: HealthSpec,
        refresh: Callable[[], Instance | None],
        cancel: threading.Event,
    ) -> str | None:
        self.probed.append(target)
        inst = refresh()
        if inst is None or inst.state != "running":
            return "the container exited"
        return "connection refused" if inst.id in self.unhealthy else None


@dataclass(frozen=True)
class FakeHead:
    digest: str
    media_type: str = "application/vnd.oci.image.manifest.v1+json"
    size: int = 0


@dataclass
class FakeRegistries:
    """Registries as (registry, repository, tag) -> digest; `down` answers nothing."""

    tags: dict[tuple[str, str, str], str] = field(default_factory=dict)
    down: bool = False
    heads: list[tuple[str, str, str]] = field(default_factory=list)

    def head_manifest(self, registry: str, repository: str, reference: str) -> FakeHead:
        self.heads.append((registry, repository, reference))
        if self.down:
            raise RegistryError(f"{registry}: no answer (connection refused)", 0, True)
        digest = self.tags.get((registry, repository, reference))
        if digest is None:
            raise RegistryError(f"{registry}/{repository}:{reference}: manifest unknown", 404)
        return FakeHead(digest)

    def get_manifest(
        self, registry: str, repository: str, reference: str
    ) -> tuple[FakeHead, dict[str, Any]]:
        return self.head_manifest(registry, repository, reference), {}
