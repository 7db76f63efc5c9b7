"""The daemon: one reactor thread owns all state; adapters (watcher, build workers) post
messages to its queue. Decisions come from `planner`; this module only wires and executes."""

from __future__ import annotations

import heapq
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import ParamSpec, TypeVar

from loguru import logger

from sidecar.adapters import logs
from sidecar.adapters.command_reader import CommandReader
from sidecar.adapters.compose import Compose
from sidecar.adapters.docker_events import DockerEvents
from sidecar.adapters.store import Store, StoreUnavailable
from sidecar.adapters.watcher import OVERFLOW, TreeWatcher
from sidecar.core.debounce import Debouncer
from sidecar.core.ignore import IgnoreList
from sidecar.core.keys import Keys, TraefikKeys
from sidecar.core.model import Project, ProjectError
from sidecar.core.planner import (
    Action,
    CrashLoop,
    JobQueue,
    Kind,
    plan_orphans,
    plan_project_change,
)
from sidecar.core.types import ContainerEvent, Incoming, JobDone, StreamState
from sidecar.runtime.control import Control
from sidecar.runtime.deployer import Deployer
from sidecar.runtime.jobs import JobRunner
from sidecar.runtime.rotation import Rotation
from sidecar.runtime.sources import Sources
from sidecar.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Paths:
    paths: list[str]


@dataclass(frozen=True)
class Wake:
    pass


Message = Paths | JobDone | Wake | ContainerEvent | StreamState | Incoming

# Events after which an instance must not receive traffic, at once.
_LEAVE = {"die", "stop", "destroy", "pause", "oom"}
# Signals `docker kill` sends to end a container (SIGHUP etc. do not take it out).
_FATAL_SIGNALS = {"9", "15", "2", "3", "SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT"}


PERIODIC = "periodic resync"
DOCKER_EVENT = "docker event: "


def _quiet(reason: str) -> bool:
    """Converges run for every Docker event and every resync pass; they stay out of the
    events stream (no -started / job-finished) and only report a repair (`converged`)."""
    return reason == PERIODIC or reason.startswith(DOCKER_EVENT)


def leaves_rotation(ev: ContainerEvent) -> bool:
    if ev.action == "kill":
        return ev.signal in _FATAL_SIGNALS
    if ev.action == "health_status":
        return ev.status == "unhealthy"
    return ev.action in _LEAVE


class Daemon:
    def __init__(self, settings: Settings, compose: Compose, store: Store) -> None:
        self.settings = settings
        self.compose = compose
        self.store = store
        self.workspace = str(settings.workspace.resolve())
        self.queue: queue.Queue[Message] = queue.Queue()
        self.stopping = threading.Event()
        self.cancel_builds = threading.Event()
        self.debouncer = Debouncer(settings.debounce_ms / 1000, settings.debounce_max_ms / 1000)
        self.jobs = JobQueue(settings.build_concurrency)
        self.pool = ThreadPoolExecutor(settings.build_concurrency, thread_name_prefix="build")
        self.project = Project(compose.project_name, self.workspace, tuple(compose.files), {})
        self.sources = Sources(store, IgnoreList(settings.ignore_patterns), self.workspace)
        self.mapper = self.sources.set_project(self.project)
        self.watcher: TreeWatcher | None = None
        self.rotation = Rotation(store, TraefikKeys(settings.traefik_root, compose.project_name))
        # Deploy steps stop at the stop signal (no new instance once stopping: `compose down`
        # stops the sidecar first and must find every container); builds get stop_grace_s.
        self.deployer = Deployer(
            compose,
            self.rotation,
            self._event,
            self.stopping,
            settings.url_mode,
            settings.network,
        )
        self.runner = JobRunner(
            compose, self.deployer, self.queue.put, self.cancel_builds, settings.build_timeout_s
        )
        self._last_build: dict[str, dict[str, str]] = {}
        self.control = Control(self)
        self.deployer.retire_first = self.control.retire_first
        self.commands: CommandReader | None = None
        self.crashes = CrashLoop(
            settings.crash_backoff_base_s,
            settings.crash_backoff_max_s,
            settings.crash_window_s,
            settings.crash_max_failures,
        )
        self.docker_events: DockerEvents | None = None
        # (due, seq, service, reason): converges scheduled for later (crash backoff, resync)
        self._timers: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._next_resync = time.monotonic() + settings.resync_interval_s
        self.started = time.time()
        self._next_beat = 0.0

    # --- life cycle ----------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stopping.set()
        self.queue.put(Wake())

    def run(self) -> int:
        self._safe(self.store.enable_keyspace_events)
        self._load_initial()
        lost = self._safe(self.store.heartbeat, self.started, self.settings.heartbeat_ttl_s)
        self.control.load_desired(adopt_running=bool(lost))
        self.commands = CommandReader(self.store, self.queue.put)
        self.commands.start()
        self.docker_events = DockerEvents(
            self.compose.docker_cmd(),
            self.project.name,
            self._on_docker,
            self.settings.docker_retry_base_s,
            self.settings.docker_retry_max_s,
        )
        self.docker_events.start()
        self.watcher = TreeWatcher(self.mapper.watch_roots, self.mapper.prunes_dir, self._on_paths)
        self.watcher.start()
        self._event("ready", watches=self.watcher.watch_count)
        logger.info(
            "ready: {} services, {} watched",
            len(self.project.services),
            len(self.project.built_services()),
        )
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _on_paths(self, paths: list[str]) -> None:
        self.queue.put(Paths(paths))

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                msg = self.queue.get(timeout=self._timeout())
                self._handle(msg)
                while True:  # coalesce whatever else is already queued
                    self._handle(self.queue.get_nowait())
            except queue.Empty:
                pass
            now = time.monotonic()
            batch = self.debouncer.take(now, hold=self._git_busy())
            if batch:
                logger.debug("batch of {} paths", len(batch))
                self._process_batch(batch)
            self._fire_timers(now)
            self._start_jobs()
            if now >= self._next_beat:
                self._next_beat = now + self.settings.heartbeat_interval_s
                self._beat()

    def _timeout(self) -> float:
        wait = max(0.0, min(self._next_beat, self._next_resync) - time.monotonic())
        if self._timers:
            wait = min(wait, max(0.0, self._timers[0][0] - time.monotonic()))
        deadline = self.debouncer.deadline()
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()))
            if self._git_busy():
                wait = max(wait, 0.05)
        return wait

    def _git_busy(self) -> bool:
        return self.debouncer.pending > 0 and os.path.exists(
            os.path.join(self.workspace, ".git", "index.lock")
        )

    def _shutdown(self) -> None:
        logger.info("stopping: {} jobs in flight", len(self.jobs.running))
        if self.watcher:
            self.watcher.stop()
        if self.docker_events:
            self.docker_events.stop()
        if self.commands:
            self.commands.stop()
        self.jobs.waiting.clear()
        self.jobs.followups.clear()
        deadline = time.monotonic() + self.settings.stop_grace_s
        while self.jobs.running and time.monotonic() < deadline:
            try:
                self._handle(self.queue.get(timeout=0.1))
            except queue.Empty:
                continue
        if self.jobs.running:
            logger.warning("cancelling jobs of {}", ", ".join(sorted(self.jobs.running)))
        self.cancel_builds.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        while True:
            try:
                self._handle(self.queue.get_nowait())
            except queue.Empty:
                break
        self._safe(self.store.clear_heartbeat)
        self._event("stopped")
        logger.info("stopped")

    # --- messages ------------------------------------------------------------------------
    def _handle(self, msg: Message) -> None:
        if isinstance(msg, Paths):
            logger.trace("paths: {}", msg.paths[:3])
            self.debouncer.add(msg.paths, time.monotonic())
        elif isinstance(msg, JobDone):
            self._job_done(msg)
        elif isinstance(msg, ContainerEvent):
            self._container_event(msg)
        elif isinstance(msg, StreamState):
            self._stream_state(msg)
        elif isinstance(msg, Incoming):
            self.control.on_command(msg)

    # --- docker events -------------------------------------------------------------------
    def _on_docker(self, msg: ContainerEvent | StreamState) -> None:
        """Runs on the events thread. Taking an instance out of the rotation happens right
        here (the rotation is thread-safe): milliseconds, not a trip through the loop."""
        if (
            isinstance(msg, ContainerEvent)
            and leaves_rotation(msg)
            and msg.action
            not in (
                "pause",
                "health_status",
            )
        ):
            # whoever sent it, it is going away; a kill or stop means someone chose that
            self.rotation.mark_leaving(msg.container, killed=msg.action in ("kill", "stop"))
        if isinstance(msg, ContainerEvent) and msg.action == "start":
            self.rotation.mark_back(msg.container)
        if isinstance(msg, ContainerEvent) and leaves_rotation(msg):
            t0 = time.monotonic()
            if self.rotation.remove(msg.service, msg.container, state=msg.action):
                lag = (time.time_ns() - msg.time_ns) / 1e6 if msg.time_ns else -1
                logger.info(
                    "{}: {} left the rotation on {} ({:.1f} ms after the event, "
                    "{:.1f} ms to publish)",
                    msg.service,
                    msg.name,
                    msg.action,
                    lag,
                    (time.monotonic() - t0) * 1000,
                )
        if isinstance(msg, ContainerEvent) and msg.action == "destroy":
            self.rotation.forget_container(msg.container)
        self.queue.put(msg)

    def _container_event(self, ev: ContainerEvent) -> None:
        svc = self.project.services.get(ev.service)
        if svc is None or not svc.served:
            return
        if ev.action in ("die", "oom") and not self.rotation.exit_expected(ev.container):
            delay = self.crashes.record(svc.name, time.monotonic())
            if delay is None:
                self._service_failed(svc.name, ev)
                return
            if delay > 0:
                self._schedule(
                    svc.name,
                    delay,
                    f"{DOCKER_EVENT}{ev.name} died (exit {ev.exit_code or '?'}); "
                    f"replacing after {delay:g}s backoff",
                )
                return
        if svc.name in self.crashes.failed:
            return
        what = f"{ev.action} {ev.status}".strip()
        self.jobs.request(svc.name, f"{DOCKER_EVENT}{what} of {ev.name}", Kind.CONVERGE)

    def _service_failed(self, name: str, ev: ContainerEvent) -> None:
        reason = (
            f"{len(self.crashes.deaths.get(name, []))} deaths within "
            f"{self.settings.crash_window_s:g}s (last: {ev.name}, exit {ev.exit_code})"
        )
        logger.error(
            "{} marked failed: {}; not replacing it until the next build, rollout or command",
            name,
            reason,
        )
        self.jobs.forget(name)  # queued replacements are off too
        self._safe(self.store.record_build, name, {"state": "failed", "failed_reason": reason})
        self._event("service-failed", name, error=reason)

    def _stream_state(self, st: StreamState) -> None:
        if not st.connected:
            self._event("docker-disconnected", error=st.detail)
            return
        if st.detail == "reconnected":
            self._event("docker-reconnected")
            self._resync("docker daemon reconnected", plain_too=True)

    def _schedule(self, service: str, delay: float, reason: str) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, service, reason))

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, service, reason = heapq.heappop(self._timers)
            if service in self.project.services and service not in self.crashes.failed:
                self.jobs.request(service, reason, Kind.CONVERGE)
        if now >= self._next_resync:
            self._next_resync = now + self.settings.resync_interval_s
            self._resync(PERIODIC)

    def _resync(self, reason: str, plain_too: bool = False) -> None:
        """Level-triggered repair: converge every served service against what Docker says;
        after a daemon restart also bring plain services back up."""
        running: set[str] = set()
        if plain_too:
            running = self._safe_docker(self.compose.running_services, set())
        for svc in self.project.services.values():
            if svc.served and svc.name not in self.crashes.failed:
                self.jobs.request(svc.name, reason, Kind.CONVERGE)
            elif plain_too and not svc.served and svc.name not in running:
                self.jobs.request(svc.name, reason, Kind.UP)

    # --- redis ---------------------------------------------------------------------------
    def _beat(self) -> None:
        """Heartbeat, and the Redis watchdog: a Redis that came back, or came back empty,
        gets everything re-published."""
        if not self.store.available:
            if self.store.probe():
                logger.info("redis is back: re-publishing")
                self._republish("redis reconnected")
            return
        lost = self._safe(self.store.heartbeat, self.started, self.settings.heartbeat_ttl_s)
        if lost:
            logger.warning("redis lost the sidecar's state (restart or flush): re-publishing")
            self._republish("redis lost its data")

    def _republish(self, reason: str) -> None:
        self._safe(self.store.enable_keyspace_events)
        self._safe(self.store.publish_project, self.project, self.workspace)
        self.rotation.republish()
        for svc, fields in self._last_build.items():
            self._safe(self.store.record_build, svc, fields)
        for svc, replicas in self.control.desired.items():
            self._safe(self.store.set_desired, svc, replicas)
        # the hash cache is rebuilt from disk; pending (unbuilt) changes stay pending
        missing = self.sources.rebuild_cache([s.name for s in self.project.built_services()])
        self._safe(self.store.heartbeat, self.started, self.settings.heartbeat_ttl_s)
        self._event("resynced", reason=reason, hashes_rebuilt=",".join(missing))

    # --- project model -------------------------------------------------------------------
    def _excluded(self) -> set[str]:
        """Services never managed: the exclude setting and the sidecar's own service."""
        return set(self.settings.exclude) | self.compose.own_services

    def _load(self) -> Project:
        """The project as compose resolves it, minus the services we must not manage."""
        project = self.compose.load()
        excluded = self._excluded()
        if not excluded:
            return project
        kept = {n: s for n, s in project.services.items() if n not in excluded}
        return replace(project, services=kept)

    def _load_initial(self) -> None:
        try:
            project = self._load()
        except ProjectError as exc:
            self._project_invalid(exc)
            return
        self._set_project(project)
        present: set[str] = self._safe_docker(self.compose.services_with_containers, set())
        self._execute(plan_orphans(project, present - self._excluded()))
        self._startup_scan()
        plain = [s.name for s in project.services.values() if not s.served and not s.serve_error]
        if plain and not self.stopping.is_set():
            self._up(plain, build=True)  # also builds images that do not exist yet
        for svc in project.services.values():
            if svc.served and not self._safe_docker(partial(self.compose.has_image, svc), True):
                self._request_build(svc.name, "no image yet")
            elif svc.served:
                self.jobs.request(svc.name, "start-up", Kind.CONVERGE)

    def _startup_scan(self) -> None:
        report = self.sources.startup([s.name for s in self.project.built_services()])
        for svc, count in report.stale.items():
            self.jobs.request(svc, f"{count} files changed while the sidecar was stopped")
        stale = ",".join(report.stale)
        logger.info(
            "scanned {} files in {:.2f}s; stale: {}", report.files, report.seconds, stale or "none"
        )
        self._event("scanned", files=report.files, seconds=f"{report.seconds:.3f}", stale=stale)

    def _reload_project(self) -> None:
        try:
            project = self._load()
        except ProjectError as exc:
            self._project_invalid(exc)
            return
        project = self._keep_invalid_services(project)
        for name, spec in project.services.items():
            old = self.project.services.get(name)
            if old is not None and old.replicas != spec.replicas:
                self.control.forget_desired(name)  # the compose file's own count wins again
        actions = plan_project_change(self.project, project)
        self._set_project(project)
        self._event("project-reloaded", actions=len(actions))
        self._execute(actions)
        for svc, count in self.sources.pending().items():
            if svc in project.services:
                # changes whose build failed (possibly because of this very file) get another go
                self.jobs.request(svc, f"{count} files not yet built")

    def _keep_invalid_services(self, project: Project) -> Project:
        """A service whose x-sidecar is invalid is reported and left as it is: it keeps its
        last good definition, so nothing is rolled out, scaled or unrouted because of it."""
        services = dict(project.services)
        for name, svc in project.services.items():
            if not svc.serve_error:
                continue
            logger.error("{}; {} is left as it is", svc.serve_error, name)
            self._event("service-invalid", name, error=svc.serve_error)
            if name in self.project.services:
                services[name] = self.project.services[name]
        return replace(project, services=services)

    def _project_invalid(self, exc: ProjectError) -> None:
        logger.error("compose project invalid, keeping the last good model: {}", exc)
        self._safe(self.store.project_load_failed, str(exc))
        self._event("project-invalid", error=str(exc))

    def _set_project(self, project: Project) -> None:
        if project.name != self.store.keys.project:
            # compose's own `name:` wins over the directory-derived default
            self.store.keys = Keys(self.store.keys.prefix, project.name)
            self.rotation.traefik = TraefikKeys(self.settings.traefik_root, project.name)
        self.project = project
        self.mapper = self.sources.set_project(project)
        logs.set_project(project.name)
        self._safe(self.store.publish_project, project, self.workspace)
        if self.watcher:
            self.watcher.set_prune(self.mapper.prunes_dir)

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            logger.info("{} {}: {}", action.kind.value, action.service, action.reason)
            if action.kind is Kind.REMOVE:
                self.jobs.forget(action.service)
                self.sources.forget(action.service)
                self.deployer.unserve(action.service)
                count = self._safe_docker(partial(self.compose.remove_service, action.service), 0)
                self._safe(self.store.forget_service, action.service)
                self._event(
                    "service-removed", action.service, containers=count, reason=action.reason
                )
            elif action.kind is Kind.BUILD:
                self._request_build(action.service, action.reason)
            else:
                self.jobs.request(action.service, action.reason, action.kind)

    def _request_build(self, name: str, reason: str) -> None:
        """Build from scratch: every file of the context is part of the snapshot."""
        self.sources.take_all(name)
        self.jobs.request(name, reason, Kind.BUILD)

    def _up(self, services: list[str], build: bool) -> None:
        result = self.compose.up(services, build=build)
        if result.ok:
            self._event("deployed", ",".join(services), seconds=f"{result.duration:.3f}")
            return
        if len(services) > 1:
            for svc in services:  # one broken service must not keep the others down
                self._up([svc], build=build)
            return
        logger.error("up {} failed:\n{}", services[0], result.tail)
        self._event("deploy-failed", services[0], error=result.tail)

    # --- file changes --------------------------------------------------------------------
    def _process_batch(self, paths: set[str]) -> None:
        built = [s.name for s in self.project.built_services()]
        if OVERFLOW in paths:
            changed = self.sources.rescan(built)
        else:
            if any(self.mapper.is_project_file(p) for p in paths):
                self._reload_project()
            changed = self.sources.changes(paths)
        for svc, count in changed.items():
            if self.control.is_paused(svc):
                logger.info("{}: {} files changed; paused, not building", svc, count)
                continue
            self.jobs.request(svc, f"{count} files changed")

    # --- jobs: build, roll out, converge -------------------------------------------------
    def _start_jobs(self) -> None:
        if self.stopping.is_set():
            return
        for name, kind, reason in self.jobs.start():
            svc = self.control.effective(name)
            if svc is None or (kind is Kind.CONVERGE and name in self.crashes.failed):
                self.jobs.finished(name)
                continue
            if kind in (Kind.BUILD, Kind.ROLLOUT) and name in self.crashes.deaths:
                self.crashes.reset(name)  # new code or definition: a fresh start
                self._safe(self.store.record_build, name, {"state": "", "failed_reason": ""})
            snapshot = self.sources.snapshot(name) if kind is Kind.BUILD else {}
            if not _quiet(reason):
                logger.info("{} {}: {}", kind.value, name, reason)
                self._event(f"{kind.value}-started", name, reason=reason)
            self.pool.submit(self.runner.run, svc, kind, snapshot, reason)

    def _job_done(self, done: JobDone) -> None:
        self.jobs.finished(done.service)
        quiet = _quiet(done.reason) and done.ok and not (done.deploy and done.deploy.changed)
        try:
            self.control.answer_awaiting(done)
            if not quiet:
                self._record_job(done)
        finally:
            if not _quiet(done.reason):
                self._event(
                    "job-finished",
                    done.service,
                    job=done.kind.value,
                    result="ok" if done.ok else "failed",
                )
            elif not quiet:  # an event-driven or periodic converge repaired something
                self._event(
                    "converged",
                    done.service,
                    reason=done.reason,
                    result="ok" if done.ok else "failed",
                    detail=done.deploy.tail[-300:] if done.deploy else "",
                )

    def _record_job(self, done: JobDone) -> None:
        name = done.service
        if name not in self.project.services:
            return
        failed_step = done.build if done.build and not done.build.ok else done.deploy
        if done.build is not None:
            cancelled = done.build.cancelled or (done.build.ok and self.stopping.is_set())
            result = "ok" if done.ok else ("cancelled" if cancelled else "failed")
            fields = {
                "last_build_at": f"{done.started:.3f}",
                "last_build_duration": f"{done.build.duration:.3f}",
                "last_build_result": result,
                "last_build_reason": done.reason,
                "last_build_error": "" if done.ok or failed_step is None else failed_step.tail,
            }
            self._last_build[name] = fields
            self._safe(self.store.record_build, name, fields)
        if done.ok:
            assert done.deploy is not None
            if done.kind is Kind.BUILD:
                assert done.build is not None
                self.sources.built(name, done.snapshot)
                self._event("build-succeeded", name, seconds=f"{done.build.duration:.3f}")
            logger.info(
                "{} {} done in {:.2f}s: {}",
                name,
                done.kind.value,
                time.time() - done.started,
                done.deploy.tail.splitlines()[-1:] or "",
            )
            self._event(
                "deployed",
                name,
                seconds=f"{done.deploy.duration:.3f}",
                detail=done.deploy.tail[-300:],
            )
            return
        stage = "build" if done.build is not None and not done.build.ok else "deploy"
        outcome = "cancelled" if self.stopping.is_set() else "failed"
        tail = failed_step.tail if failed_step else "cancelled before deploying"
        logger.error(
            "{} {} {}; running instances left as they were:\n{}", name, stage, outcome, tail
        )
        self._event(f"{stage}-{outcome}", name, error=tail)

    # --- helpers -------------------------------------------------------------------------
    def _event(self, kind: str, service: str = "", **fields: object) -> None:
        self._safe(self.store.event, kind, service, **fields)

    def _safe(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        try:
            return fn(*args, **kwargs)
        except StoreUnavailable as exc:
            logger.warning(
                "redis unavailable, {} skipped: {}", getattr(fn, "__name__", "call"), exc
            )
            return None

    def _safe_docker(self, fn: Callable[[], T], default: T) -> T:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - docker errors must not kill the loop
            logger.error("docker call failed: {}", exc)
            return default
