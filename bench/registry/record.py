"""Drives one phase (a registry, a compose project, the sidecar or the user's commands) through
N pushes under load and records each push as plain data (see `analyse` for the shape)."""

from __future__ import annotations

import io
import json
import random
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import Json
from testkit.docker import dockerd_identity
from testkit.http import Entry
from testkit.load import Load
from testkit.registry import Endpoint, LocalRegistry
from testkit.sidecar import Sidecar, converged
from testkit.traefik import DockerTraefik
from testkit.wait import free_port, run, wait_for
from testkit.workspace import BUSYBOX, Workspace

SERVICE = "web"
REPLICAS = 2
TOKEN = "bench-registry-hook-token"
HTTPD = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
RATE = 50.0  # requests per second through Traefik, during each push
WARMUP = 0.5  # the load runs this long before the push
# after the new version is served alone (and, for the sidecar, its job finished), the load
# goes on this long: longer than Traefik's provider throttle (2 s), so what the proxy still
# does because of the deploy is counted
TAIL = 2.5
PUSH_TIMEOUT = 90.0
START_TIMEOUT = 120.0
NOTIFY, DRIFT, BY_HAND = "notify", "drift", "by_hand"
MODES = (NOTIFY, DRIFT, BY_HAND)
# what `docker events` says of the by-hand recreate (the old container stopped, the new one
# started)
CONTAINER_ACTIONS = ("create", "start", "kill", "die", "stop", "destroy")


def image_layer(text: str, project: str) -> bytes:
    """busybox (executable), the page `text`, and a file naming the project: each phase's
    images are its own (same bytes would make the same image ID as another project's)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data, mode in (
            ("bin/busybox", BUSYBOX.read_bytes(), 0o755),
            ("www/index.html", f"{text}\n".encode(), 0o644),
            ("www/project.txt", f"{project}\n".encode(), 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def registry_images(host: str) -> list[str]:
    """Ids of every local image pulled from the registry at `host` (tagged, re-tagged by the
    sidecar as `sidecar-vN`, or left dangling by a newer pull: all keep the repository)."""
    out = run("docker", "images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}")
    found = set()
    for line in out.stdout.splitlines():
        image_id, _, repository = line.partition(" ")
        if repository.startswith(f"{host}/"):
            found.add(image_id)
    return sorted(found)


def stream_key(project: str) -> str:
    return f"sidecar:{project}:events"


def stream_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def last_id(sc: Sidecar) -> str:
    raw: Any = sc.r.xrevrange(stream_key(sc.ws.name), count=1)
    return str(raw[0][0]) if raw else "0-0"


def entries_after(sc: Sidecar, after: str) -> list[tuple[str, dict[str, str]]]:
    """Entries of the events stream newer than the id `after` ("0-0": all)."""
    raw: Any = sc.r.xrange(stream_key(sc.ws.name), min=after)
    out = [(str(i), {str(k): str(v) for k, v in f.items()}) for i, f in raw or []]
    return [(i, f) for i, f in out if i != after]


class Phase:
    """One way of delivering: its own registry and compose project, each push under load."""

    mode = ""
    jitter = 0.0  # the push waits up to this long first (uniform): not in step with a timer
    entry: Entry  # the Traefik the load goes through

    def __init__(self, base: Path, logs: Path) -> None:
        self.project = f"benchreg{self.mode[0]}{uuid.uuid4().hex[:8]}"
        self.root = base / self.project
        self.logs = logs
        self.ws = Workspace(self.root / "ws", self.project)
        self.host = f"{SERVICE}.{self.project}.test"
        self.registry = LocalRegistry(self.root / "registry", notify=self.endpoints())
        self.image = f"{self.registry.host}/{SERVICE}:latest"

    # --- what each way does differently --------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        return []

    def start_delivery(self) -> None:
        """Start what delivers (the daemon, or compose up) on the pushed v0."""
        raise NotImplementedError

    def mark(self) -> str:
        return ""

    def deliver(self) -> Json:
        """Right after the push: what the user does (nothing when a daemon does it)."""
        return {}

    def done(self, mark: str) -> bool:
        """The deliverer has finished with the push (besides the new content being served)."""
        return True

    def details(self, since: float, mark: str) -> Json:
        return {}

    def settle(self) -> None:
        time.sleep(1.0)

    def extra(self) -> Json:
        """What the phase says of itself once the pushes are over."""
        return {}

    def stop_delivery(self) -> None:
        raise NotImplementedError

    # --- the same for every way ------------------------------------------------------------
    def write_service(self, **extra: Any) -> None:
        """The image-only `web` (busybox httpd on 8080) with `extra`, in compose.yaml."""
        self.ws.services[SERVICE] = {"image": self.image, "command": HTTPD, "init": True, **extra}
        self.ws.write_compose()

    def push(self, content: str) -> str:
        return self.registry.push_image(SERVICE, "latest", image_layer(content, self.project))

    def start(self) -> float:
        """The registry with v0, the deliverer, v0 served through Traefik; the seconds."""
        t0 = time.monotonic()
        self.registry.start()
        self.push("v0")
        self.start_delivery()
        wait_for(lambda: self.entry.get(self.host) == (200, "v0"), 60, "v0 through traefik")
        self.settle()
        return time.monotonic() - t0

    def one_push(self, n: int, rng: random.Random) -> Json:
        content = f"v{n}"
        if self.jitter:
            time.sleep(rng.uniform(0, self.jitter))
        mark = self.mark()
        dockerd = dockerd_identity()
        record: Json = {"n": n, "content": content, "mode": self.mode}
        with Load(self.entry, self.host, rate=RATE) as load:
            time.sleep(WARMUP)
            record["push_started"] = time.time()
            record["digest"] = self.push(content)
            record["pushed"] = time.time()
            record |= self.deliver()
            deadline = time.monotonic() + PUSH_TIMEOUT
            while not (self.done(mark) and load.bodies(since=time.time() - 0.5) == {content}):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.mode}: {content} not live in {PUSH_TIMEOUT:g} s")
                time.sleep(0.02)
            record["live_seen"] = time.time()
            time.sleep(TAIL)
        record["samples"] = [[s.at, s.status, s.body, s.seconds] for s in load.samples]
        self.settle()
        record |= self.details(float(record["push_started"]), mark)
        record["dockerd_restarted"] = dockerd_identity() != dockerd
        return record

    def stop(self) -> Json:
        """Stop the deliverer, remove containers, networks, images and the registry; what is
        left (should be nothing)."""
        try:
            self.stop_delivery()
        finally:
            try:
                self.ws.cleanup()
                ids = registry_images(self.registry.host)
                if ids:
                    run("docker", "rmi", "-f", *ids)
            finally:
                self.registry.stop()
        return {
            "containers": self.ws.containers(all_=True),
            "images": registry_images(self.registry.host),
        }


class SidecarPhase(Phase):
    """The daemon on the private Redis, routed by the shared Traefik (Redis provider)."""

    def __init__(self, base: Path, logs: Path, redis_url: str, traefik: Entry) -> None:
        self.hook_port = free_port()
        super().__init__(base, logs)
        self.redis_url = redis_url
        self.entry = traefik
        self.settings: dict[str, str] = {}
        self.sc: Sidecar | None = None
        self.start_mark = "0-0"

    def daemon(self) -> Sidecar:
        assert self.sc is not None
        return self.sc

    def start_delivery(self) -> None:
        self.write_service(
            **{
                "x-sidecar": {
                    "port": 8080,
                    "replicas": REPLICAS,
                    "rule": f"Host(`{self.host}`)",
                    "health": {"start_timeout": 5},
                }
            }
        )
        self.sc = Sidecar(
            self.ws, self.redis_url, self.logs / f"{self.project}.log", **self.settings
        )
        sc = self.sc
        sc.start()
        wait_for(lambda: converged(sc, SERVICE, REPLICAS), START_TIMEOUT, "web serving")

    def mark(self) -> str:
        return last_id(self.daemon())

    def events(self, mark: str) -> list[dict[str, str]]:
        return [f for _, f in entries_after(self.daemon(), mark) if f.get("service") == SERVICE]

    def done(self, mark: str) -> bool:
        """A pull of web started since the push, and its job finished."""
        sc = self.daemon()
        if sc.proc is not None and sc.proc.poll() is not None:
            raise RuntimeError(f"the sidecar exited:\n{sc.log_tail()}")
        kinds = [e.get("event") for e in self.events(mark)]
        return "pull-started" in kinds and "job-finished" in kinds[kinds.index("pull-started") :]

    def details(self, since: float, mark: str) -> Json:
        return {"events": [list(e) for e in entries_after(self.daemon(), mark)]}

    def settle(self) -> None:
        self.daemon().settle(quiet=1.5)

    def start(self) -> float:
        seconds = super().start()
        self.start_mark = self.mark()
        return seconds

    def extra(self) -> Json:
        """The start-up's events, and when every drift check ran (the whole phase)."""
        entries = entries_after(self.daemon(), "0-0")
        return {
            "startup_events": [
                [f.get("event"), f.get("service")]
                for i, f in entries
                if stream_order(i) <= stream_order(self.start_mark)
            ],
            "drift_checked_at": [
                float(f["at"]) for _, f in entries if f.get("event") == "drift-checked"
            ],
        }

    def stop_delivery(self) -> None:
        if self.sc is not None:
            try:
                self.sc.stop()
            finally:
                self.sc.cleanup_keys()


class NotifyPhase(SidecarPhase):
    mode = NOTIFY

    def __init__(self, base: Path, logs: Path, redis_url: str, traefik: Entry) -> None:
        super().__init__(base, logs, redis_url, traefik)
        self.settings = {
            "http_listen": f"127.0.0.1:{self.hook_port}",
            "registry_hook_token": TOKEN,
        }

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "sidecar",
                f"http://127.0.0.1:{self.hook_port}/v1/hooks/registry",
                {"Authorization": f"Bearer {TOKEN}"},
                timeout_s=1.0,
                threshold=3,
                backoff_s=1.0,
            )
        ]

    def start_delivery(self) -> None:
        super().start_delivery()
        # the registry retries v0's notification, sent before the daemon listened, until it
        # is taken: that pull finds what runs and changes nothing; over before measuring
        sc = self.daemon()
        try:
            wait_for(lambda: sc.events("pulled", SERVICE), 20, "v0's late notification")
        except AssertionError:
            print("  (v0's notification never arrived: no start-up pull)", flush=True)


class DriftPhase(SidecarPhase):
    mode = DRIFT

    def __init__(
        self, base: Path, logs: Path, redis_url: str, traefik: Entry, interval: float
    ) -> None:
        super().__init__(base, logs, redis_url, traefik)
        self.settings = {"drift_interval_s": f"{interval:g}"}
        self.jitter = interval


class ByHandPhase(Phase):
    """No sidecar: a plain compose service with 2 replicas behind Traefik's Docker provider,
    `docker compose pull web` then `docker compose up -d web` right after each push."""

    mode = BY_HAND

    def __init__(self, base: Path, logs: Path) -> None:
        super().__init__(base, logs)
        self.traefik = DockerTraefik(self.project, logs / f"{self.project}-traefik.log")
        self.entry = self.traefik

    def start_delivery(self) -> None:
        router = f"{self.project}-{SERVICE}"
        self.write_service(
            deploy={"replicas": REPLICAS},
            labels={
                "traefik.enable": "true",
                f"traefik.http.routers.{router}.rule": f"Host(`{self.host}`)",
                f"traefik.http.routers.{router}.entrypoints": "web",
                f"traefik.http.services.{router}.loadbalancer.server.port": "8080",
                "traefik.docker.network": f"{self.project}_default",
            },
        )
        self.traefik.start()
        self.ws.compose("up", "-d")
        wait_for(lambda: len(self.ws.containers(SERVICE)) == REPLICAS, 60, "2 replicas")

    def deliver(self) -> Json:
        out: Json = {}
        for step in (("pull", SERVICE), ("up", "-d", SERVICE)):
            proc = self.ws.compose(*step, check=False)
            out[f"{step[0]}_done"] = time.time()
            out[f"{step[0]}_rc"] = proc.returncode
            if proc.returncode != 0:
                out[f"{step[0]}_output"] = (proc.stdout + proc.stderr)[-2000:]
        return out

    def details(self, since: float, mark: str) -> Json:
        """The project's container events from just before the push (bounded query)."""
        proc = run(
            "docker",
            "events",
            "--since",
            f"{since - 1:.3f}",
            "--until",
            f"{time.time():.3f}",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            "type=container",
            "--format",
            "{{json .}}",
            timeout=30,
        )
        events = []
        for line in proc.stdout.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("Action") in CONTAINER_ACTIONS:
                name = e.get("Actor", {}).get("Attributes", {}).get("name", "")
                events.append([int(e["timeNano"]) / 1e9, e["Action"], name])
        return {"docker_events": events}

    def stop_delivery(self) -> None:
        self.traefik.stop()
