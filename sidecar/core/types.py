"""Plain data that crosses layers: what Docker reports (instances, events), what a step
returned (command, deploy and job results), what arrives on the command stream. No I/O."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.core.planner import Digests, Kind


@dataclass(frozen=True)
class BasicAuth:
    """A user name and a password or token for HTTP Basic auth (a git remote, a registry);
    the secret is kept out of repr."""

    username: str
    secret: str = field(repr=False)

    def basic(self) -> str:
        """The `Authorization` header's value."""
        raw = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class Instance:
    """One container of a service, as Docker reports it."""

    id: str
    name: str
    number: int
    image: str
    state: str  # running, exited, created, paused, ...
    health: str | None  # healthy, unhealthy, starting, None without a healthcheck
    ips: dict[str, str]  # network name -> address
    host_ports: dict[int, int]  # container port -> published port on the host
    created: float

    def address(self, preferred_network: str | None) -> str | None:
        if preferred_network and preferred_network in self.ips:
            return self.ips[preferred_network]
        return next(iter(self.ips.values()), None)


@dataclass(frozen=True)
class CommandResult:
    ok: bool
    duration: float
    tail: str
    cancelled: bool = False
    timed_out: bool = False
    # compose got as far as creating/stopping containers (for `up --build`: the build passed)
    touched: bool = False
    # False: the step found nothing to change (a converge of a service already as declared)
    changed: bool = True


@dataclass(frozen=True)
class ExecResult:
    """A command run inside a container."""

    exit_code: int
    output: str  # its tail, stdout and stderr

    @property
    def missing(self) -> bool:
        """The program does not exist in the container (the runtime could not start it)."""
        text = self.output.lower()
        return self.exit_code in (126, 127) and (
            "executable file not found" in text or "no such file or directory" in text
        )


@dataclass(frozen=True)
class ContainerEvent:
    action: str  # start, die, kill, stop, destroy, pause, unpause, oom, health_status
    container: str
    service: str
    name: str
    status: str = ""  # health_status: healthy / unhealthy / starting
    signal: str = ""  # kill: the signal number
    exit_code: str = ""  # die
    time_ns: int = 0


@dataclass(frozen=True)
class StreamState:
    """The event stream went away (`connected=False`) or came back (`connected=True`)."""

    connected: bool
    detail: str = ""


@dataclass(frozen=True)
class Incoming:
    entry_id: str
    fields: dict[Any, Any]  # raw bytes from Redis: validated by sidecar.core.commands


@dataclass(frozen=True)
class GitMoved:
    """The git delivery moved the workspace from `old` to `new` (the reactor acts on the
    changed files at once, without waiting for the watcher's debounce)."""

    old: str
    new: str
    paths: tuple[str, ...]  # relative to the workspace, as `git diff --name-only` says
    subject: str
    reason: str  # what asked for it: `push <sha> (github)`, `poll`, `start-up`


@dataclass(frozen=True)
class ImagePushed:
    """A registry announced a push (through the image hub): every image-only service that
    runs that repository and tag is pulled and, if it changed, rolled out."""

    ref: str  # canonical reference: registry/repository:tag
    digest: str
    source: str  # `registry`, `dockerhub`


@dataclass(frozen=True)
class DriftChecked:
    """A drift check finished (on its worker thread): what it found, and what asked."""

    drifts: tuple[Any, ...]  # core.images.Drift, one per image-only service
    apply: bool
    entry_id: str = ""  # the command's stream entry ('' for the periodic check)
    command: Any = None  # core.commands.Command


@dataclass(frozen=True)
class DeployResult:
    ok: bool
    detail: str
    started: int = 0
    retired: int = 0
    changed: bool = True  # False: a converge that found everything as declared


@dataclass(frozen=True)
class SyncReport:
    """What a develop.watch SYNC job did."""

    ok: bool
    detail: str
    changed: bool = False  # something was sent, deleted, restarted or run
    fallback: str = ""  # why the service must be rebuilt instead (deletes it cannot do)
    seconds: float = 0.0
    fields: Mapping[str, str] = field(default_factory=dict)  # last_sync_* for the status


@dataclass(frozen=True)
class JobDone:
    service: str
    kind: Kind
    build: CommandResult | None  # None: the job built nothing
    deploy: CommandResult | None  # None: the deploy step did not run
    snapshot: Digests
    reason: str
    started: float
    quiet: bool = False  # periodic or Docker-event converge: reported only when it repairs
    sync: SyncReport | None = None  # a SYNC job's report
    image: str = ""  # the image id the service runs after a deploy that changed something
    pushed: str = ""  # the digest the registry stored, when the build was pushed (x-sidecar push)

    @property
    def ok(self) -> bool:
        return (self.build is None or self.build.ok) and bool(self.deploy and self.deploy.ok)


@dataclass(frozen=True)
class Snapshot:
    """The daemon's state for the metrics' gauges, read on each scrape (from the HTTP
    server's thread: every part comes from a lock-protected or atomic read)."""

    instances: Mapping[str, Mapping[str, int]]  # served service -> instance state -> count
    rotation: Mapping[str, int]  # served service -> URLs in its rotation
    redis_up: bool
    docker_up: bool  # the Docker events stream is connected
    threads: Mapping[str, str]  # supervised thread -> `running` / `restarting: ...` / ...
    jobs_waiting: int
    jobs_running: int
