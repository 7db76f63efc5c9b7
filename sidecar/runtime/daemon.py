"""The daemon: one reactor thread owns all state; adapters (watcher, build workers) post
messages to its queue. Decisions come from `planner`; this module only wires and executes."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, ParamSpec, TypeVar

from loguru import logger

from sidecar.adapters import logs, neighbours
from sidecar.adapters.command_reader import CommandReader
from sidecar.adapters.docker_events import DockerEvents
from sidecar.adapters.metrics import Metrics
from sidecar.adapters.watcher import OVERFLOW, TreeWatcher
from sidecar.adapters.web.server import WebServer
from sidecar.core.debounce import Debouncer
from sidecar.core.errors import StoreUnavailable
from sidecar.core.ignore import IgnoreList
from sidecar.core.images import Drift, RegistryPush, matching_services, parse_ref
from sidecar.core.keys import Keys, TraefikKeys
from sidecar.core.model import Project, ProjectError
from sidecar.core.outcomes import job_outcome
from sidecar.core.planner import (
    Action,
    Digests,
    Job,
    JobQueue,
    Kind,
    Lane,
    lane_of,
    plan_orphans,
    plan_project_change,
)
from sidecar.core.ports import Clock, DockerPort, Executor, Prober, StorePort, SystemClock
from sidecar.core.syncing import plan_watch
from sidecar.core.types import (
    ContainerEvent,
    DriftChecked,
    GitMoved,
    ImagePushed,
    Incoming,
    JobDone,
    Snapshot,
    StreamState,
)
from sidecar.core.versions import tags_to_prune, version_tag
from sidecar.runtime import drift
from sidecar.runtime.control import Control
from sidecar.runtime.delivery import Delivery, GitPort
from sidecar.runtime.deployer import Deployer
from sidecar.runtime.drift import RegistryPort, drift_summary
from sidecar.runtime.healing import Healing
from sidecar.runtime.image_pushes import ImagePushes
from sidecar.runtime.jobs import JobRunner
from sidecar.runtime.rotation import Rotation
from sidecar.runtime.sources import Sources
from sidecar.runtime.supervisor import Supervisor
from sidecar.runtime.syncer import Syncer, SyncWork
from sidecar.runtime.versioning import Versions
from sidecar.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Paths:
    paths: list[str]


@dataclass(frozen=True)
class Wake:
    pass


Message = (
    Paths
    | JobDone
    | Wake
    | ContainerEvent
    | StreamState
    | Incoming
    | GitMoved
    | ImagePushed
    | DriftChecked
)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        compose: DockerPort,
        store: StorePort,
        *,
        clock: Clock | None = None,
        executors: dict[Lane, Executor] | None = None,
        prober: Prober | None = None,
        docker_cmd: list[str] | None = None,
        files: tuple[str, ...] = (),
        git: GitPort | None = None,
        registries: RegistryPort | None = None,
    ) -> None:
        self.settings = settings
        self.compose = compose
        self.store = store
        self.clock = clock or SystemClock()
        self.docker_cmd = docker_cmd or ["docker"]
        self.workspace = str(settings.workspace.resolve())
        # SimpleQueue: its put is reentrant, so the signal handler may post to it
        self.queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.cancel_builds = threading.Event()
        self.signalled: int | None = None  # set by the signal handler, read by the loop
        self.debouncer = Debouncer(settings.debounce_ms / 1000, settings.debounce_max_ms / 1000)
        self.jobs = JobQueue(
            settings.build_concurrency, settings.repair_concurrency, settings.sync_concurrency
        )
        # two lanes: converges (replacing a crashed instance) never wait behind builds
        self.executors: dict[Lane, Executor] = executors or {
            Lane.WORK: ThreadPoolExecutor(settings.build_concurrency, thread_name_prefix="build"),
            Lane.REPAIR: ThreadPoolExecutor(
                settings.repair_concurrency, thread_name_prefix="repair"
            ),
            Lane.SYNC: ThreadPoolExecutor(settings.sync_concurrency, thread_name_prefix="watch"),
        }
        self.project = Project(compose.project_name, self.workspace, files, {})
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
            prober,
        )
        self.syncer = Syncer(compose, store, self.deployer, self._event, self.mapper)
        self.deployer.prepare = self.syncer.catch_up
        # develop.watch work waiting for its service's next SYNC job; services whose last
        # sync failed (Docker away, a copy refused) compare everything at the next resync
        self.sync_work: dict[str, SyncWork] = {}
        self.sync_parked: set[str] = set()
        self.runner = JobRunner(
            compose,
            self.deployer,
            self.queue.put,
            self.cancel_builds,
            settings.build_timeout_s,
            self.clock,
            self.syncer,
            self._event,
            neighbours.forget if settings.neighbour_flush else None,
        )
        self._last_build: dict[str, dict[str, str]] = {}
        self.control = Control(self)
        self.deployer.retire_first = self.control.retire_first
        self.healing = Healing(self, settings, self.clock, self.rotation, self.queue.put)
        self.crashes = self.healing.crashes
        self.supervisor = Supervisor(self.clock)
        self.supervisor.on_fatal = lambda _msg: self.request_stop()
        self.versions = Versions(store, self.clock)
        self.metrics = Metrics(self.snapshot)
        self.healing.on_lag = self.metrics.docker_lag
        self.web: WebServer | None = None
        # delivery from git (git_remote set): the workspace's commit, as the reactor last
        # heard it from the git thread; it goes with each deploy's version
        self.delivery: Delivery | None = None
        self.git_commit = ""
        if settings.git_remote.get_secret_value():
            self.delivery = Delivery(
                settings,
                git or _git_adapter(settings),
                store,
                self.queue.put,
                self._event,
                self.clock,
            )
        # digest drift: registry requests on a thread of their own, one check at a time
        self._registries = registries
        self._drift_pool = ThreadPoolExecutor(1, thread_name_prefix="drift")
        self._drift_running = False
        self._next_drift = (
            self.clock.monotonic() + settings.drift_interval_s
            if settings.drift_interval_s
            else float("inf")
        )
        self.started = self.clock.time()
        self._next_beat = 0.0

    # --- life cycle ----------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stopping.set()
        self.queue.put(Wake())

    def on_signal(self, signum: int, _frame: object = None) -> None:
        """The signal handler: it only records the signal and wakes the loop (SimpleQueue's
        put is reentrant); the loop logs and stops. A second signal exits at once."""
        if self.signalled is not None:
            os.write(2, b"second signal: exiting now\n")
            os._exit(128 + signum)
        self.signalled = signum
        self.queue.put(Wake())

    def start_up(self) -> None:
        """Everything before the loop: Redis state, the project, what runs already."""
        self._safe(self.store.enable_keyspace_events)
        if self.delivery is not None:  # an empty workspace is cloned before the project loads
            self.git_commit = self.delivery.prepare()
        self._load_initial()
        lost = self._safe(self.store.heartbeat, self.started, self.settings.heartbeat_ttl_s, {})
        self.control.load_state(adopt_running=bool(lost))

    def start_threads(self) -> None:
        """The adapters' long-running threads, each through the supervisor."""
        commands = CommandReader(self.store, self.queue.put)
        self.supervisor.spawn("commands", commands.run)
        events = DockerEvents(
            self.docker_cmd,
            self.project.name,
            self.healing.on_docker,
            self.settings.docker_retry_base_s,
            self.settings.docker_retry_max_s,
        )
        self.supervisor.spawn("docker-events", events.run, interrupt=events.interrupt)
        listen = self.settings.listen
        if listen is not None:
            self.web = WebServer(self.settings, listen, lambda: self.store.keys, self.metrics)
            # not essential: a taken port is reported and retried, the rest runs on
            self.supervisor.spawn(
                "http", self.web.run, interrupt=self.web.interrupt, essential=False
            )
        if self.delivery is not None:
            # not essential either: a remote that is away is reported; what runs, runs on
            self.supervisor.spawn(
                "git", self.delivery.run, interrupt=self.delivery.interrupt, essential=False
            )
        images = ImagePushes(self.store, self.queue.put)
        self.supervisor.spawn("images", images.run, essential=False)
        self._start_watcher()
        self.supervisor.adopt("watcher", self._watcher_alive, self._restart_watcher)

    def _start_watcher(self) -> None:
        self.watcher = TreeWatcher(self.mapper.watch_roots, self.mapper.prunes_dir, self._on_paths)
        self.watcher.start()

    def _watcher_alive(self) -> bool:
        return self.watcher is not None and self.watcher.alive

    def _restart_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self._start_watcher()
        self.queue.put(Paths([OVERFLOW]))  # events may have been lost meanwhile: rescan

    def run(self) -> int:
        """The daemon: start up, follow everything until stopped. 0, or 1 when a thread could
        not be kept alive."""
        self.start_up()
        try:
            self.start_threads()
            watches = self.watcher.watch_count if self.watcher else 0
            self._event("ready", watches=watches)
            logger.info(
                "ready: {} services, {} watched",
                len(self.project.services),
                len(self.project.built_services()),
            )
            while not self.stopping.is_set():
                self.step(self._timeout())
        finally:
            self._shutdown()
        if self.supervisor.fatal:
            logger.error("stopped because {}", self.supervisor.fatal)
            return 1
        return 0

    def run_steps(self, max_steps: int = 1000, until_idle: bool = True) -> int:
        """The finite mode (arq's burst): steps without waiting until nothing more happens
        without time passing (`until_idle`), or `max_steps`. The number of steps taken."""
        for n in range(1, max_steps + 1):
            if not self.step(0.0) and until_idle:
                return n
        return max_steps

    def _on_paths(self, paths: list[str]) -> None:
        self.queue.put(Paths(paths))

    def step(self, timeout: float) -> bool:
        """One pass of the loop: the messages waiting (after at most `timeout` seconds for
        the first), then batches, timers, jobs and the heartbeat. True if anything
        happened."""
        progress = False
        try:
            msg = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
            while True:  # coalesce whatever else is already queued
                progress = True
                self._dispatch(msg)
                msg = self.queue.get_nowait()
        except queue.Empty:
            pass
        now = self.clock.monotonic()
        batch = self.debouncer.take(now, hold=self._git_busy())
        if batch:
            logger.debug("batch of {} paths", len(batch))
            self._guarded("a batch of file changes", self._process_batch, batch)
            progress = True
        progress = self.healing.fire_timers(now) or progress
        if now >= self._next_drift:
            self._next_drift = now + self.settings.drift_interval_s
            if not self._drift_running:
                self.check_drift(apply=True)
                progress = True
        progress = self._start_jobs() or progress
        if now >= self._next_beat:
            self._next_beat = now + self.settings.heartbeat_interval_s
            self._guarded("the heartbeat", self._beat)
        return progress

    def _dispatch(self, msg: Message) -> None:
        self._guarded(type(msg).__name__, self._handle, msg)

    def _guarded(self, what: str, fn: Callable[P, None], *args: P.args, **kw: P.kwargs) -> None:
        """The reactor never dies of one message: the error is logged with its traceback
        and reported, and the loop goes on (level-triggered: the next resync repairs)."""
        try:
            fn(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.opt(exception=exc).error("reactor: handling {} failed: {}", what, exc)
            self._event("reactor-error", error=f"{what}: {type(exc).__name__}: {exc}")

    def _timeout(self) -> float:
        now = self.clock.monotonic()
        due = min(self._next_beat, self.healing.next_due(), self._next_drift)
        wait = max(0.0, due - now)
        deadline = self.debouncer.deadline()
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - now))
            if self._git_busy():
                wait = max(wait, 0.05)
        return wait

    def _git_busy(self) -> bool:
        """A git operation is under way (a checkout by hand, or the git thread's move until
        the reactor has it): a batch released now would be half a tree, or a build that
        does not know its commit."""
        if self.debouncer.pending == 0:
            return False
        if self.delivery is not None and self.delivery.moving.is_set():
            return True
        return os.path.exists(os.path.join(self.workspace, ".git", "index.lock"))

    def _shutdown(self) -> None:
        logger.info("stopping: {} jobs in flight", len(self.jobs.running))
        self.supervisor.stop()
        if self.watcher:
            self.watcher.stop()
        self.jobs.waiting.clear()
        self.jobs.followups.clear()
        deadline = self.clock.monotonic() + self.settings.stop_grace_s
        while self.jobs.running and self.clock.monotonic() < deadline:
            try:
                self._dispatch(self.queue.get(timeout=0.1))
            except queue.Empty:
                continue
        if self.jobs.running:
            logger.warning("cancelling jobs of {}", ", ".join(sorted(self.jobs.running)))
        self.cancel_builds.set()
        for pool in self.executors.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self.syncer.close()
        self._drift_pool.shutdown(wait=False, cancel_futures=True)
        while True:
            try:
                self._dispatch(self.queue.get_nowait())
            except queue.Empty:
                break
        self._safe(self.store.clear_heartbeat)
        self._event("stopped")
        logger.info("stopped")

    # --- messages ------------------------------------------------------------------------
    def _handle(self, msg: Message) -> None:
        if isinstance(msg, Paths):
            logger.trace("paths: {}", msg.paths[:3])
            self.debouncer.add(msg.paths, self.clock.monotonic())
        elif isinstance(msg, JobDone):
            self._job_done(msg)
        elif isinstance(msg, ContainerEvent):
            self.healing.container_event(msg)
        elif isinstance(msg, StreamState):
            self.healing.stream_state(msg)
        elif isinstance(msg, Incoming):
            self.control.on_command(msg)
        elif isinstance(msg, GitMoved):
            self._git_moved(msg)
        elif isinstance(msg, ImagePushed):
            self._image_pushed(msg)
        elif isinstance(msg, DriftChecked):
            self._drift_checked(msg)
        elif isinstance(msg, Wake) and self.signalled is not None and not self.stopping.is_set():
            name = signal.Signals(self.signalled).name
            logger.info("{} received: stopping (again to force)", name)
            self.request_stop()

    # --- redis ---------------------------------------------------------------------------
    def _beat(self) -> None:
        """Heartbeat, and the Redis watchdog: a Redis that came back, or came back empty,
        gets everything re-published. Also where adopted threads are checked, and thread
        states go out with the heartbeat."""
        self.supervisor.check()
        if not self.store.available:
            if self.store.probe():
                logger.info("redis is back: re-publishing")
                self._republish("redis reconnected")
            return
        lost = self._safe(
            self.store.heartbeat,
            self.started,
            self.settings.heartbeat_ttl_s,
            self.supervisor.states(),
        )
        if lost:
            logger.warning("redis lost the sidecar's state (restart or flush): re-publishing")
            self._republish("redis lost its data")

    def _republish(self, reason: str) -> None:
        self._safe(self.store.enable_keyspace_events)
        self._safe(self.store.publish_project, self.project, self.workspace)
        self.rotation.republish()
        for svc, fields in self._last_build.items():
            self._safe(self.store.record_build, svc, fields)
        self.control.republish()
        self.versions.republish()
        # builds that succeeded while Redis was away are committed now; the hash cache is
        # rebuilt from disk; pending (unbuilt) changes stay pending
        self.sources.save_unsaved()
        self.syncer.save_unsaved(everything=True)
        missing = self.sources.rebuild_cache([s.name for s in self.project.built_services()])
        self._safe(
            self.store.heartbeat,
            self.started,
            self.settings.heartbeat_ttl_s,
            self.supervisor.states(),
        )
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
        plain = [s.name for s in project.services.values() if not s.served and not s.invalid]
        if plain and not self.stopping.is_set():
            self._up(plain, build=True)  # also builds images that do not exist yet
        for svc in project.services.values():
            if svc.served and not self._safe_docker(partial(self.compose.has_image, svc), True):
                self._request_build(svc.name, "no image yet")
            elif svc.served:
                self.jobs.request(svc.name, "start-up", Kind.CONVERGE)
        for svc in project.services.values():
            if svc.sync_rules:  # files changed meanwhile, initial_sync, new containers
                self._request_sync(svc.name, SyncWork(full=True))

    def _startup_scan(self) -> None:
        report = self.sources.startup([s.name for s in self.project.built_services()])
        for svc, diff in report.stale.items():
            self._on_changes(svc, diff, "while the sidecar was stopped")
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
        resync = []
        for name, spec in project.services.items():
            old = self.project.services.get(name)
            if old is not None and old.replicas != spec.replicas:
                self.control.forget_desired(name)  # the compose file's own count wins again
            if old is not None and old.watch_digest != spec.watch_digest and spec.sync_rules:
                resync.append(name)  # a rule added or changed: compare its paths now
        actions = plan_project_change(self.project, project)
        self._set_project(project)
        self._event("project-reloaded", actions=len(actions))
        self._execute(actions)
        for name in resync:
            self._request_sync(name, SyncWork(full=True, reset=True))
        for svc in self.sources.pending():
            # changes whose build failed (possibly because of this very file) get another go
            self.act_on_pending(svc, "and not yet built")

    def _keep_invalid_services(self, project: Project) -> Project:
        """A service whose x-sidecar is invalid is reported and left as it is: it keeps its
        last good definition, so nothing is rolled out, scaled or unrouted because of it."""
        services = dict(project.services)
        for name, svc in project.services.items():
            if not svc.invalid:
                continue
            logger.error("{}; {} is left as it is", svc.invalid, name)
            self._event("service-invalid", name, error=svc.invalid)
            if name in self.project.services:
                services[name] = self.project.services[name]
        return replace(project, services=services)

    def _project_invalid(self, exc: ProjectError) -> None:
        logger.error("compose project invalid, keeping the last good model: {}", exc)
        self._safe(self.store.project_load_failed, str(exc))
        self._event("project-invalid", error=str(exc))
        for name, error in exc.services.items():  # what compose refused, named by the rule
            self._event("service-invalid", name, error=error)

    def _set_project(self, project: Project) -> None:
        if project.name != self.store.keys.project:
            # compose's own `name:` wins over the directory-derived default
            self.store.keys = Keys(self.store.keys.prefix, project.name)
            self.rotation.traefik = TraefikKeys(self.settings.traefik_root, project.name)
        self.project = project
        self.mapper = self.sources.set_project(project)
        self.syncer.mapper = self.mapper
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
                self.sync_work.pop(action.service, None)
                self.syncer.forget(action.service)
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
            for svc in services:
                spec = self.project.services.get(svc)
                image = self._safe_docker(partial(self.compose.image_id, spec), "") if spec else ""
                # brings up what was there: a version only for a new image (or the first)
                self._deployed(svc, Kind.CONVERGE, image, "start-up")
            self._event("deployed", ",".join(services), seconds=f"{result.duration:.3f}")
            return
        if len(services) > 1:
            for svc in services:  # one broken service must not keep the others down
                self._up([svc], build=build)
            return
        logger.error("up {} failed:\n{}", services[0], result.tail)
        self._event("deploy-failed", services[0], error=result.tail)

    # --- file changes --------------------------------------------------------------------
    def _git_moved(self, msg: GitMoved) -> None:
        """The git thread moved the workspace: act on the files the commit changed now (the
        watcher's events for them follow and find nothing new)."""
        self.git_commit = msg.new
        paths = {os.path.join(self.workspace, p) for p in msg.paths}
        self._process_batch(paths, f"in {msg.new[:12]} ({msg.reason})")

    # --- digest drift ----------------------------------------------------------------------
    def check_drift(self, apply: bool, entry_id: str = "", command: Any = None) -> None:
        """Start a drift check on its thread; its DriftChecked comes back to the reactor."""
        if self._registries is None:
            self._registries = _registries(self.settings)
        registries = self._registries
        services = list(self.project.services.values())
        self._drift_running = True

        def work() -> None:
            try:
                drifts = drift.check(services, self.compose, registries, drift.this_platform())
            except Exception as exc:  # noqa: BLE001 - reported as the check's result
                logger.opt(exception=exc).error("drift check failed")
                drifts = []
            self.queue.put(DriftChecked(tuple(drifts), apply, entry_id, command))

        self._drift_pool.submit(work)

    def _drift_checked(self, msg: DriftChecked) -> None:
        self._drift_running = False
        drifts: list[Drift] = list(msg.drifts)
        drifted = [d for d in drifts if d.drifted]
        report = {d.service: json.dumps(asdict(d), sort_keys=True) for d in drifts}
        self._safe(self.store.record_drift, report, self.clock.time())
        if msg.apply:
            for d in drifted:
                self.jobs.request(d.service, f"drift: {d.reason}", Kind.PULL)
        self._event(
            "drift-checked",
            checked=len(drifts),
            drifted=",".join(d.service for d in drifted),
            applied="1" if msg.apply and drifted else "0",
        )
        summary = drift_summary(drifts, msg.apply)
        if drifted or msg.command is not None:
            logger.info("drift: {}", summary)
        if msg.command is not None:
            self.control.answer_drift(msg.entry_id, msg.command, True, summary)

    def _image_pushed(self, msg: ImagePushed) -> None:
        """A registry push: pull (and roll out if it changed) each image-only service that
        runs that repository and tag; a push for an image nothing runs does nothing."""
        push = RegistryPush(parse_ref(msg.ref), msg.digest, "", "")
        images = {
            name: spec.image
            for name, spec in self.project.services.items()
            if spec.image and not spec.built and not spec.invalid
        }
        names = matching_services(push, images)
        logger.info("{} push of {}: {}", msg.source, msg.ref, ", ".join(names) or "no service")
        for name in names:
            reason = f"{msg.source} push of {msg.ref}" + (
                f" ({msg.digest[:19]})" if msg.digest else ""
            )
            self.jobs.request(name, reason, Kind.PULL)

    def _process_batch(self, paths: set[str], when: str = "") -> None:
        built = [s.name for s in self.project.built_services()]
        if OVERFLOW in paths:
            changed = self.sources.rescan(built)
            for spec in self.project.services.values():
                if spec.sync_rules:
                    self._request_sync(spec.name, SyncWork(full=True))
        else:
            if any(self.mapper.is_project_file(p) for p in paths):
                self._reload_project()
            changed = self.sources.changes(paths)
        for svc, diff in changed.items():
            self._on_changes(svc, diff, when)

    def _on_changes(self, name: str, diff: Digests, when: str = "", restart: bool = True) -> None:
        """Files of a service really changed: what its rules ask (compose's order: rebuild,
        sync, restart, exec; every matching rule applies). `restart=False`: changes seen
        before, acted on again (a restart rule already fired for them)."""
        spec = self.project.services.get(name)
        if spec is None or spec.invalid:
            return
        if self.control.is_paused(name):
            logger.info("{}: {} files changed; paused, not acting", name, len(diff))
            return
        hits = self.mapper.map_hits(self.mapper.abs(r) for r in diff).get(name, {})
        work = plan_watch(spec, hits)
        suffix = f" {when}" if when else ""
        if work.rebuild:
            self.jobs.request(name, f"{len(diff)} files changed{suffix}")
        if work.sync or (work.restart and restart):
            self._request_sync(name, SyncWork(work.sync, work.restart and restart))

    def _request_sync(self, name: str, work: SyncWork) -> None:
        """The work waits here until the service's next SYNC job takes all of it: changes
        arriving while a sync runs make exactly one follow-up."""
        self.sync_work[name] = self.sync_work.get(name, SyncWork()).merged(work)
        self.jobs.request(name, "develop.watch", Kind.SYNC, quiet=True)

    # --- jobs: build, roll out, converge -------------------------------------------------
    def _start_jobs(self) -> bool:
        if self.stopping.is_set():
            return False
        started = self.jobs.start()
        for job in started:
            self._guarded(f"starting the {job.kind.value} of {job.service}", self._start_job, job)
        return bool(started)

    def _start_job(self, job: Job) -> None:
        name, kind, reason = job.service, job.kind, job.reason
        svc = self.control.effective(name)
        if svc is None or (kind is Kind.CONVERGE and name in self.crashes.failed):
            self.jobs.finished(name)
            return
        if kind in (Kind.BUILD, Kind.ROLLOUT) and name in self.crashes.deaths:
            self.crashes.reset(name)  # new code or definition: a fresh start
            self._safe(self.store.record_build, name, {"state": "", "failed_reason": ""})
        snapshot = self.sources.snapshot(name) if kind is Kind.BUILD else {}
        work = self.sync_work.pop(name, None) if kind is Kind.SYNC else None
        if kind is Kind.SYNC and not work:
            self.jobs.finished(name)
            return
        if not job.quiet:
            logger.info("{} {}: {}", kind.value, name, reason)
            self._event(f"{kind.value}-started", name, reason=reason)
        try:
            self.executors[lane_of(kind)].submit(
                self.runner.run, svc, kind, snapshot, reason, job.quiet, work
            )
        except RuntimeError:  # the pool is shut down: we are stopping
            self.jobs.finished(name)

    def _job_done(self, done: JobDone) -> None:
        self.jobs.finished(done.service)
        name = done.service
        outcome = job_outcome(done, self.stopping.is_set(), name in self.project.services)
        try:
            self.control.answer_awaiting(done)
            if outcome.build_fields is not None:
                self._last_build[name] = outcome.build_fields
                self._safe(self.store.record_build, name, outcome.build_fields)
            if outcome.commit:
                self.sources.built(name, done.snapshot)
            if any(kind == "deployed" for kind, _ in outcome.events):
                self._deployed(name, done.kind, done.image, done.reason, done.pushed)
            if done.sync is not None and done.sync.fallback:
                self._request_build(name, done.sync.fallback)
            if done.sync is not None and not done.sync.ok:
                self.sync_parked.add(name)  # nothing is lost: the next resync retries all
            if outcome.error:
                step = done.build if done.build and not done.build.ok else done.deploy
                logger.error(
                    "{} {}; running instances left as they were:\n{}",
                    name,
                    outcome.error,
                    step.tail if step else "cancelled before deploying",
                )
            elif done.ok and done.deploy and any(k == "deployed" for k, _ in outcome.events):
                logger.info(
                    "{} {} done in {:.2f}s: {}",
                    name,
                    done.kind.value,
                    self.clock.time() - done.started,
                    done.deploy.tail.splitlines()[-1:] or "",
                )
        finally:
            for kind, fields in outcome.events:
                self._event(kind, name, **self._with_commit(kind, fields))
            if name in self.sync_work and not self.stopping.is_set():
                self.jobs.request(name, "develop.watch", Kind.SYNC, quiet=True)

    def _deployed(self, name: str, kind: Kind, image: str, reason: str, digest: str = "") -> None:
        """A good deploy: its version (with the commit: the workspace's, or the one a
        rollback returned to), and its image kept for a later rollback."""
        back = self.control.rollbacks.pop(name, None)
        commit = back.commit if back is not None else self.git_commit
        version = self.versions.deployed(name, kind, image, reason, commit, digest)
        spec = self.project.services.get(name)
        if version is None or spec is None or not version.image:
            return
        kept = self.settings.images_kept
        try:
            self.compose.keep_image(spec, version.image, version_tag(version.version))
            for tag in tags_to_prune(self.compose.image_tags(spec), version.version, kept):
                self.compose.drop_image_tag(spec, tag)
        except Exception as exc:  # noqa: BLE001 - a rollback image less, nothing worse
            logger.warning("{}: could not keep the image of v{}: {}", name, version.version, exc)

    # --- helpers -------------------------------------------------------------------------
    def _with_commit(self, kind: str, fields: Mapping[str, str]) -> Mapping[str, str]:
        """A failed build or deploy says which commit broke it, when git delivers."""
        if self.git_commit and kind in ("build-failed", "deploy-failed"):
            return {**fields, "commit": self.git_commit}
        return fields

    def _event(self, kind: str, service: str = "", **fields: object) -> None:
        self.metrics.on_event(kind, service, fields)  # counted even while Redis is away
        self._safe(self.store.event, kind, service, **fields)

    def snapshot(self) -> Snapshot:
        """The gauges' reading (`GET /metrics`, from the HTTP thread): the rotation and the
        supervisor lock their own state; the rest are single reads."""
        census = self.rotation.census()
        return Snapshot(
            instances={name: states for name, (_, states) in census.items()},
            rotation={name: size for name, (size, _) in census.items()},
            redis_up=self.store.available,
            docker_up=self.healing.docker_up,
            threads=self.supervisor.states(),
            jobs_waiting=len(self.jobs.waiting),
            jobs_running=len(self.jobs.running),
        )

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

    # what Control needs of its host (runtime.control.Host)
    safe = _safe
    safe_docker = _safe_docker
    event = _event

    def reload_project(self) -> None:
        self._reload_project()

    def unpark_syncs(self) -> None:
        """The resync: services whose sync failed compare every synced path again."""
        for name in sorted(self.sync_parked):
            if name in self.project.services:
                self._request_sync(name, SyncWork(full=True))
        self.sync_parked.clear()

    def act_on_pending(self, name: str, when: str) -> None:
        """Changes seen but not yet built (a failed build, a pause): what their rules ask
        (a rebuild only for files whose rules rebuild; synced files are no build)."""
        diff = self.sources.pending_files(name)
        if diff:
            self._on_changes(name, diff, when, restart=False)

    def cancel_all_builds(self) -> None:
        self.cancel_builds.set()


def _git_adapter(settings: Settings) -> GitPort:
    from sidecar.adapters.git import Credentials, Git

    token = settings.git_token.get_secret_value()
    return Git(
        settings.workspace,
        settings.git_remote.get_secret_value(),
        settings.git_branch,
        Credentials(settings.git_username or "git", token) if token else None,
        settings.git_timeout_s,
    )


def _registries(settings: Settings) -> RegistryPort:
    from pathlib import Path

    from sidecar.adapters.registry import Registries, docker_config_auths

    home = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    path = settings.registry_auth_file or Path(home) / "config.json"
    try:
        auths = docker_config_auths(Path(path))
    except ValueError as exc:
        logger.error("registry credentials unreadable ({}): asking registries anonymously", exc)
        auths = {}
    return Registries(auths, settings.registry_insecure)
