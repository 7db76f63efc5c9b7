"""The sidecar as a real process (`python -m sidecar run` from this checkout) and the helpers
that read what it publishes: events, rotation list, Traefik's server keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from testkit.redis_server import read_events
from testkit.wait import file_tail, wait_for
from testkit.workspace import Workspace


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
                # a port of its own unless a test names one: a daemon left on the default
                # 8765 (or anything else there) must not fail every test's HTTP thread
                "SIDECAR_HTTP_LISTEN": "127.0.0.1:0",
                # the code under test, whatever checkout an editable install points at
                "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
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
        """Remove this project's keys, its Traefik keys (routers, services, middlewares named
        `<project>-<svc>`) included, and close the client (an unclosed socket would surface
        as a ResourceWarning, an error under `filterwarnings = error`)."""
        try:
            keys = list(self.r.scan_iter(f"sidecar:{self.ws.name}:*"))
            keys += list(self.r.scan_iter(f"traefik/http/*/{self.ws.name}-*"))
            if keys:
                self.r.delete(*keys)
        except redis.RedisError:
            pass  # the server of this test may be gone already
        finally:
            self.r.close()


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
