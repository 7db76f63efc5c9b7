"""The Compose and Docker adapter. python-on-whales builds every command line (one client,
made from settings, passed in; never its module-level global) and lists containers; we run
the long commands ourselves so a build can be cancelled by killing its process group."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from loguru import logger
from python_on_whales import Container, DockerClient
from python_on_whales.exceptions import DockerException
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from sidecar.adapters.engine import Engine
from sidecar.adapters.retries import log_attempt
from sidecar.core.errors import docker_error_is_transient
from sidecar.core.ignore import DockerIgnore
from sidecar.core.model import (
    Project,
    ProjectError,
    ServiceSpec,
    parse_project,
    raw_watch_errors,
)
from sidecar.core.types import CommandResult, ExecResult, Instance
from sidecar.settings import Settings

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
_TAIL = 40
# how long a command that is already changing containers may overrun its timeout
_FINISH_GRACE = 120.0


PLUGIN_DIRS = (
    "~/.docker/cli-plugins",
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def find_compose_plugin() -> str | None:
    """The docker-compose plugin binary, where the docker CLI would find it."""
    dirs = (
        [os.path.join(os.environ["DOCKER_CONFIG"], "cli-plugins")]
        if os.environ.get("DOCKER_CONFIG")
        else []
    )
    for d in [*dirs, *PLUGIN_DIRS]:
        path = os.path.join(os.path.expanduser(d), "docker-compose")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def default_project_name(workspace: Path) -> str:
    """Compose's own rule: lower-cased directory name, only [a-z0-9_-]."""
    return re.sub(r"[^a-z0-9_-]", "", workspace.resolve().name.lower()) or "default"


CONFIG_FILES_LABEL = "com.docker.compose.project.config_files"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"


# Docker bind-mounts these three files of every container from its state directory
_OWN_ID = re.compile(r"/containers/([0-9a-f]{64})/(?:resolv\.conf|hostname|hosts)\s")


def own_container_id(mountinfo: str) -> str | None:
    """The id of the container this process runs in, from /proc/self/mountinfo (None on a
    host)."""
    m = _OWN_ID.search(mountinfo)
    return m.group(1) if m else None


@dataclass(frozen=True)
class OwnContainer:
    """The sidecar's own container, when it runs in one that compose made."""

    id: str
    project: str
    service: str
    config_files: frozenset[str]


def pick_project_name(
    setting: str | None,
    own: OwnContainer | None,
    files: frozenset[str],
    env_name: str | None,
    from_file: Callable[[], str | None],
) -> str | None:
    """The project name, first found: the setting; the sidecar's own container when compose
    made it from these same files; COMPOSE_PROJECT_NAME; the compose file's (`from_file`, only
    called when needed). None: the caller falls back to the directory name."""
    if setting:
        return setting
    if own and own.project and own.config_files == files:
        return own.project
    return env_name or from_file()


class Compose:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workspace = settings.workspace.resolve()
        self.files = settings.resolved_compose_files()
        self.docker = self._client(settings.project_name)
        self.project_name = settings.project_name or default_project_name(self.workspace)
        self._plugin = find_compose_plugin()
        self._retry = self._retrying()  # one policy for every call (thread-safe, like Store's)
        self.engine = Engine()  # the Engine API, for what develop.watch does in containers
        # services never managed because the sidecar itself runs as one of them
        self.own_services: frozenset[str] = frozenset()
        # compose creates the project's networks on its first `up`; two first `up`s at once
        # (two services building at start-up) create two networks of one name (Docker does
        # not refuse the duplicate) and instances land on the one nobody looks up. Until one
        # `up` has succeeded, they run one at a time.
        self._first_up = threading.Lock()
        self._networks_ready = False

    def resolve_identity(self) -> str:
        """Settle the project name as compose on the host named it, and notice when the sidecar
        runs as a service of that project (it then never manages that service).

        Order: the setting; the sidecar's own container when compose made it from these compose
        files (so `docker compose -p NAME up` on the host names the project inside too);
        COMPOSE_PROJECT_NAME; the compose file's `name:`; the directory name."""
        own = self.own_container()
        files = frozenset(str(Path(f).resolve()) for f in (self.files or self._default_files()))

        def from_file() -> str | None:
            try:
                return self.load().name
            except ProjectError:
                return None

        self.project_name = pick_project_name(
            self.settings.project_name,
            own,
            files,
            os.environ.get("COMPOSE_PROJECT_NAME"),
            from_file,
        ) or default_project_name(self.workspace)
        self.docker = self._client(self.project_name)
        if own and own.project == self.project_name and own.service:
            self.own_services = frozenset({own.service})
        return self.project_name

    def _client(self, project_name: str | None) -> DockerClient:
        return DockerClient(
            compose_files=list(self.files),
            compose_project_name=project_name,
            compose_project_directory=str(self.workspace),
            compose_profiles=list(self.settings.profiles),
        )

    def own_container(self) -> OwnContainer | None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8") as f:
                cid = own_container_id(f.read())
        except OSError:
            return None
        if cid is None:
            return None
        try:
            labels = self.docker.container.inspect(cid).config.labels or {}
        except DockerException as exc:
            logger.debug("cannot inspect own container {}: {}", cid[:12], _clean(str(exc)))
            return None
        return OwnContainer(
            id=cid,
            project=labels.get(PROJECT_LABEL, ""),
            service=labels.get(SERVICE_LABEL, ""),
            config_files=frozenset(f for f in labels.get(CONFIG_FILES_LABEL, "").split(",") if f),
        )

    def docker_cmd(self) -> list[str]:
        """The docker CLI invocation python-on-whales uses (host, context, config flags)."""
        return [str(a) for a in self.docker.client_config.docker_cmd]

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(a) for a in self.docker.compose.docker_compose_cmd]
        if self._plugin and os.path.basename(cmd[0]) == "docker" and cmd[1:2] == ["compose"]:
            # the plugin binary runs standalone too; calling it directly skips the docker
            # CLI's own start-up (about 30 ms of every edit-to-live)
            cmd = [self._plugin, *cmd[2:]]
        return cmd + list(args)

    # --- the model -----------------------------------------------------------------------
    def load(self) -> Project:
        """The resolved project. YAML output: compose's JSON output drops `x-*` extensions."""
        proc = subprocess.run(
            self._cmd("config"), capture_output=True, text=True, cwd=self.workspace, check=False
        )
        if proc.returncode != 0:
            raise ProjectError(
                _clean(proc.stderr) or f"docker compose config exited {proc.returncode}",
                self._raw_watch_errors(),
            )
        try:
            config = yaml.safe_load(proc.stdout) or {}
        except yaml.YAMLError as exc:
            raise ProjectError(f"unreadable compose config output: {exc}") from exc
        files = self.files or self._default_files()
        project = parse_project(config, tuple(files))
        self.project_name = project.name or self.project_name
        return project

    def _raw_watch_errors(self) -> dict[str, str]:
        """Compose refused the project: which services' develop.watch rules are at fault,
        read from the files as written (best effort: unreadable files name nothing)."""
        docs = []
        for f in self.files or self._default_files():
            try:
                docs.append(yaml.safe_load(Path(f).read_text(encoding="utf-8")))
            except (OSError, yaml.YAMLError):
                continue
        return raw_watch_errors(docs)

    def _default_files(self) -> list[str]:
        names = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
        found = [str(self.workspace / n) for n in names if (self.workspace / n).exists()]
        override = [f.replace(".y", ".override.y") for f in found[:1]]
        return found[:1] + [f for f in override if os.path.exists(f)]

    @staticmethod
    def read_dockerignores(project: Project) -> dict[str, DockerIgnore]:
        """service name -> its rules (`<Dockerfile>.dockerignore` wins over the context's)."""
        out: dict[str, DockerIgnore] = {}
        for svc in project.built_services():
            assert svc.context is not None
            candidates = [Path(svc.context) / ".dockerignore"]
            if svc.dockerfile:
                candidates.insert(0, Path(svc.dockerfile + ".dockerignore"))
            for path in candidates:
                if path.is_file():
                    out[svc.name] = DockerIgnore.parse(path.read_text(errors="replace"))
                    break
        return out

    # --- commands ------------------------------------------------------------------------
    def build(self, service: str, cancel: threading.Event, timeout: float) -> CommandResult:
        return self._run(self._cmd("build", service), cancel, timeout)

    def pull(self, service: str, cancel: threading.Event, timeout: float) -> CommandResult:
        """`docker compose pull <svc>`: the image its tag names in the registry now."""
        return self._run(self._cmd("pull", "--quiet", service), cancel, timeout)

    def runs_image(self, svc: ServiceSpec) -> bool:
        """Every running container of the service runs the image its name points at now
        (False when one runs an older one, or when there is none)."""
        current = self.image_id(svc)
        running = self.running_instances(svc.name)
        return bool(current and running) and all(
            self.engine.container_image(i.id) == current for i in running
        )

    def repo_digests(self, svc: ServiceSpec) -> list[str]:
        """The RepoDigests (`name@sha256:...`) of the images the service's running
        containers were made from (of the image its name points at, when none runs)."""
        running = self.running_instances(svc.name)
        images = {self.engine.container_image(i.id) for i in running} - {""}
        if not images:
            images = {self.image_id(svc)} - {""}
        return sorted({d for image in images for d in self.engine.repo_digests(image)})

    def build_and_up(self, service: str, cancel: threading.Event, timeout: float) -> CommandResult:
        """Build and recreate in one compose run (one start-up of compose instead of two: about
        0.1 s off every edit). A failing build leaves the containers untouched; cancelling
        only interrupts the build phase (see `_run`)."""
        return self._run(self._cmd("up", "-d", "--no-deps", "--build", service), cancel, timeout)

    def up(self, services: list[str], build: bool = False) -> CommandResult:
        """Create or recreate only these services' containers (no dependents, no others)."""
        args = ["up", "-d", "--no-deps"] + ([] if build else ["--no-build"])
        return self._run(self._cmd(*args, *services), None, 600)

    def _retrying(self) -> Retrying:
        """Retries of a Docker call whose error says the daemon was away (transient);
        every other error is permanent and raised at once."""
        attempts = self.settings.docker_call_attempts

        def describe(exc: BaseException | None) -> str:
            lines = _clean(str(exc)).splitlines()
            return lines[-1] if lines else type(exc).__name__

        return Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(
                multiplier=self.settings.docker_retry_base_s, max=self.settings.docker_retry_max_s
            ),
            retry=retry_if_exception(
                lambda e: isinstance(e, DockerException) and docker_error_is_transient(str(e))
            ),
            before_sleep=log_attempt("docker call", attempts, describe),
            reraise=True,
        )

    def _run(self, cmd: list[str], cancel: threading.Event | None, timeout: float) -> CommandResult:
        if self._networks_ready or cmd[len(self._cmd())] != "up":
            return self._run_retried(cmd, cancel, timeout)
        with self._first_up:
            result = self._run_retried(cmd, cancel, timeout)
            self._networks_ready = self._networks_ready or result.ok
        return result

    def _run_retried(
        self, cmd: list[str], cancel: threading.Event | None, timeout: float
    ) -> CommandResult:
        """Run a compose command; one that failed before touching anything because the daemon
        was away is tried again (`docker_call_attempts`), anything else is returned as is."""
        attempts = self.settings.docker_call_attempts
        for attempt in range(1, attempts + 1):
            result = self._run_once(cmd, cancel, timeout)
            retry = not (result.ok or result.touched or result.cancelled or result.timed_out)
            if not retry or attempt == attempts or not docker_error_is_transient(result.tail):
                return result
            wait = min(
                self.settings.docker_retry_base_s * 2 ** (attempt - 1),
                self.settings.docker_retry_max_s,
            )
            logger.warning(
                "docker compose {} failed (attempt {}/{}): the daemon is away; again in {:g}s",
                cmd[-1],
                attempt,
                attempts,
                wait,
            )
            if (cancel or threading.Event()).wait(wait):
                break
        return result

    def _run_once(
        self, cmd: list[str], cancel: threading.Event | None, timeout: float
    ) -> CommandResult:
        """Run a compose command. `cancel` or the timeout kill its process group, but only
        while it is still building: once it prints that containers are being touched it is
        allowed to finish, so no half-made container is ever left behind."""
        started = time.monotonic()
        logger.debug("running {}", " ".join(cmd[-4:]))
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.workspace,
            start_new_session=True,
        )
        tail: deque[str] = deque(maxlen=_TAIL)
        touching = threading.Event()
        reader = threading.Thread(target=_drain, args=(proc, tail, touching), daemon=True)
        reader.start()
        cancelled = timed_out = False
        while True:
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            if touching.is_set() and time.monotonic() - started < timeout + _FINISH_GRACE:
                continue
            cancelled = cancel is not None and cancel.is_set()
            timed_out = time.monotonic() - started > timeout
            if cancelled or timed_out:
                kill_group(proc)
                break
        proc.wait()
        reader.join(timeout=2)
        ok = proc.returncode == 0 and not (cancelled or timed_out)
        return CommandResult(
            ok, time.monotonic() - started, "\n".join(tail), cancelled, timed_out, touching.is_set()
        )

    # --- containers ----------------------------------------------------------------------
    def _containers(
        self, service: str | None = None, running: bool = False
    ) -> list[tuple[str, str]]:
        found = self._retry(
            self.docker.container.list,
            all=not running,
            filters=[("label", f"{PROJECT_LABEL}={self.project_name}")],
        )
        out = []
        for c in found:
            svc = (c.config.labels or {}).get(SERVICE_LABEL, "")
            if service is None or svc == service:
                out.append((c.id, svc))
        return out

    def instances(self, service: str) -> list[Instance]:
        """The service's containers (any state), oldest first; one-off `run` containers excluded."""
        filters: list[tuple[Literal["label"], str]] = [
            ("label", f"{PROJECT_LABEL}={self.project_name}"),
            ("label", f"{SERVICE_LABEL}={service}"),
        ]
        out = [
            _instance(c)
            for c in self._retry(self.docker.container.list, all=True, filters=filters)
            if (c.config.labels or {}).get(ONEOFF_LABEL) != "True"
        ]
        return sorted(out, key=lambda i: (i.created, i.number))

    def instance(self, container_id: str) -> Instance | None:
        """One container, freshly inspected (None when it is gone)."""
        try:
            return _instance(self._retry(self.docker.container.inspect, container_id))
        except DockerException:
            return None

    def image_name(self, svc: ServiceSpec) -> str:
        return svc.image or f"{self.project_name}-{svc.name}"

    def has_image(self, svc: ServiceSpec) -> bool:
        return bool(self._retry(self.docker.image.exists, self.image_name(svc)))

    def image_id(self, svc: ServiceSpec) -> str:
        """The id of the image the service's name points at now ('' when Docker cannot
        say): one Engine API call, no CLI process."""
        return self.engine.image_id(self.image_name(svc))

    # --- images kept for rollback (the Engine API: milliseconds, on the reactor's thread) --
    def keep_image(self, svc: ServiceSpec, image_id: str, tag: str) -> None:
        """Tag `image_id` `<repository>:<tag>` so it outlives the next build."""
        self.engine.tag(image_id, _repository(self.image_name(svc)), tag)

    def push(self, svc: ServiceSpec, target: str) -> str:
        """Tag the service's image `target` (`registry/repository[:tag]`, `latest` without
        a tag) and push it: the digest the registry stored."""
        repository = _repository(target)
        tag = target[len(repository) + 1 :] or "latest"
        self.engine.tag(self.image_id(svc), repository, tag)
        return self.engine.push(repository, tag)

    def image_tags(self, svc: ServiceSpec) -> list[str]:
        return self.engine.tags(_repository(self.image_name(svc)))

    def drop_image_tag(self, svc: ServiceSpec, tag: str) -> None:
        self.engine.untag(f"{_repository(self.image_name(svc))}:{tag}")

    def point_image(self, svc: ServiceSpec, image_id: str) -> None:
        """Make the service's image name (what compose starts) the image `image_id`."""
        name = self.image_name(svc)
        repository = _repository(name)
        tag = name[len(repository) + 1 :] or "latest"
        self.engine.tag(image_id, repository, tag)

    def scale(self, service: str, replicas: int) -> CommandResult:
        """Run `replicas` containers of the service, never recreating existing ones (new ones
        get the current image and definition)."""
        return self._run(
            self._cmd(
                "up",
                "-d",
                "--no-deps",
                "--no-recreate",
                "--no-build",
                "--scale",
                f"{service}={replicas}",
                service,
            ),
            None,
            600,
        )

    def stop_remove(self, ids: list[str], timeout: int = 10) -> None:
        if not ids:
            return
        try:
            self.docker.container.stop(ids, time=timeout)
        except DockerException as exc:
            logger.debug("stop {}: {}", ids, _clean(str(exc)))
        try:
            self.docker.container.remove(ids, force=True, volumes=True)
        except DockerException as exc:
            logger.debug("remove {}: {}", ids, _clean(str(exc)))

    def logs_tail(self, container_id: str, lines: int = 20) -> str:
        try:
            return _clean(str(self.docker.container.logs(container_id, tail=lines)))
        except DockerException as exc:
            return f"(no logs: {_clean(str(exc))})"

    def services_with_containers(self) -> set[str]:
        """Services that have containers, in any state."""
        return {svc for _, svc in self._containers()}

    def running_services(self) -> set[str]:
        """Services with at least one running container."""
        return {svc for _, svc in self._containers(running=True)}

    def remove_service(self, service: str) -> int:
        ids = [cid for cid, _ in self._containers(service)]
        if ids:
            try:
                self.docker.container.remove(ids, force=True, volumes=True)
            except DockerException as exc:
                logger.warning("removing containers of {} failed: {}", service, _clean(str(exc)))
        return len(ids)

    # --- inside running containers (develop.watch) --------------------------------------
    def running_instances(self, service: str) -> list[Instance]:
        """The service's running containers, oldest first, through the Engine API (one call,
        ~1 ms; health and published ports are not filled in)."""
        labels = [f"{PROJECT_LABEL}={self.project_name}", f"{SERVICE_LABEL}={service}"]
        out = []
        for c in self.engine.running(labels):
            lab = c.get("Labels") or {}
            if lab.get(ONEOFF_LABEL) == "True":
                continue
            nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
            out.append(
                Instance(
                    id=c["Id"],
                    name=(c.get("Names") or ["/?"])[0].lstrip("/"),
                    number=int(lab.get(NUMBER_LABEL, "0") or 0),
                    image=c.get("Image", ""),
                    state="running",
                    health=None,
                    ips={n: s["IPAddress"] for n, s in nets.items() if s.get("IPAddress")},
                    host_ports={},
                    created=float(c.get("Created", 0)),
                )
            )
        return sorted(out, key=lambda i: (i.created, i.number))

    def copy_in(self, container_id: str, tar: bytes) -> None:
        self.engine.copy_in(container_id, tar)

    def delete_in(self, container_id: str, paths: list[str]) -> None:
        self.engine.delete_in(container_id, paths)

    def exec_in(
        self,
        container_id: str,
        command: list[str],
        user: str | None = None,
        privileged: bool = False,
        workdir: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> ExecResult:
        return self.engine.exec_in(container_id, command, user, privileged, workdir, environment)

    def restart_instance(self, container_id: str, timeout: float) -> None:
        self.engine.restart(container_id, timeout)


# compose's progress lines once it stops building and starts touching containers
_TOUCHING = re.compile(r"^\s*(?:Container \S+\s+\w+|\S+\s+Built)\s*$")


def _instance(c: Container) -> Instance:
    labels = c.config.labels or {}
    nets = c.network_settings.networks or {}
    ports: dict[int, int] = {}
    for spec, bindings in (c.network_settings.ports or {}).items():
        if bindings and spec.endswith("/tcp"):
            ports[int(spec.split("/")[0])] = int(bindings[0]["HostPort"])
    return Instance(
        id=c.id,
        name=c.name,
        number=int(labels.get(NUMBER_LABEL, "0") or 0),
        image=c.image,
        state=c.state.status or "",
        health=c.state.health.status if c.state.health else None,
        ips={n: s.ip_address for n, s in nets.items() if s.ip_address},
        host_ports=ports,
        created=c.created.timestamp() if c.created else 0.0,
    )


def _drain(proc: subprocess.Popen[bytes], tail: deque[str], touching: threading.Event) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        if line:
            tail.append(line)
            if _TOUCHING.match(line):
                touching.set()


def kill_group(
    proc: subprocess.Popen[bytes], term_wait: float = 2.0, kill_wait: float = 5.0
) -> None:
    """SIGTERM the process's group, then SIGKILL it if it has not exited within `term_wait`."""
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, kill_wait)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _clean(text: str) -> str:
    return "\n".join(line for line in text.strip().splitlines() if line.strip())[-2000:]


def _repository(image: str) -> str:
    """`registry:5000/team/web:1.2` -> `registry:5000/team/web` (a tag is after the last
    `/`; a port is before it); a name without a tag is its own repository."""
    head, slash, last = image.rpartition("/")
    name = last.split("@", 1)[0].partition(":")[0]
    return f"{head}{slash}{name}"
