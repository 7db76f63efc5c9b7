"""Drives the two tools through redeploys under load and records each redeploy window as
plain data: every request sent in it, the write, and the tool's own account of the redeploy."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Json, fmt
from bench.zero_downtime.analyse import analyse, analyse_redeploy, summarise
from testkit.compose_watch import WatchProcess
from testkit.docker import container_events, docker_answers, dockerd_identity
from testkit.load import OpenLoad, Request
from testkit.redis_server import RedisServer
from testkit.sidecar import Sidecar
from testkit.traefik import DockerTraefik, Traefik
from testkit.wait import file_tail, poll
from testkit.workspace import IMAGE_LABEL, Workspace, remove_images

HOST = "web.bench"
SVC = "web"
REPLICAS = 2
RATE = 50.0  # requests per second through Traefik
REQUEST_TIMEOUT = 1.0
# After the tool's last action of a redeploy (sidecar: `job-finished`; compose watch: its
# last output line or container start, whichever is later) the window stays open this long,
# longer than Traefik's provider throttle (providersThrottleDuration, 2 s), so anything the
# proxy still does because of the redeploy is counted in it.
TAIL = 2.5
SIDECAR_QUIET = 1.0  # the sidecar is idle (no job in flight) and wrote no event for this long
WATCH_QUIET = 2.0  # compose watch printed nothing for this long
REDEPLOY_TIMEOUT = 120.0
START_TIMEOUT = 120.0
LOAD_MAX_SECONDS = 900.0  # hard bound of one tool's load thread

SIDECAR = "sidecar"
WATCH = "compose watch"


def rows(requests: list[Request]) -> list[list[Any]]:
    return [[r.sent, r.done, r.status, r.body] for r in requests]


def serves_new(load: OpenLoad, since: float, content: str) -> bool:
    return any(s.ok and s.body == content for s in load.between(since, time.time()))


@dataclass
class Finished:
    at: float  # unix time of the tool's last action of the redeploy
    result: str  # "ok", or what went wrong
    detail: Json


class Tool:
    label = ""

    def __init__(self, ws: Workspace, log: Path) -> None:
        self.ws = ws
        self.log = log

    def start(self) -> None:
        raise NotImplementedError

    def wait_finished(self, since: float, content: str, load: OpenLoad, mark: Any) -> Finished:
        """Block until the redeploy caused by the write at `since` is over."""
        raise NotImplementedError

    def mark(self) -> Any:
        """Taken just before a write: what `wait_finished` compares against."""
        return None

    def settle(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def log_tail(self, lines: int = 40) -> str:
        return file_tail(self.log, lines)


class SidecarTool(Tool):
    label = SIDECAR

    def __init__(self, ws: Workspace, log: Path, redis_url: str) -> None:
        super().__init__(ws, log)
        self.sc = Sidecar(ws, redis_url, log)

    def start(self) -> None:
        self.sc.start()  # waits for the `ready` event
        self.settle()

    def settle(self) -> None:
        self.sc.settle(quiet=SIDECAR_QUIET, timeout=REDEPLOY_TIMEOUT)

    def mark(self) -> Any:
        return len(self.sc.events("job-finished", SVC))

    def wait_finished(self, since: float, content: str, load: OpenLoad, mark: Any) -> Finished:
        """The first `job-finished` event of the service after the write."""
        deadline = time.monotonic() + REDEPLOY_TIMEOUT
        while time.monotonic() < deadline:
            if self.sc.proc is not None and self.sc.proc.poll() is not None:
                raise RuntimeError(f"the sidecar exited:\n{self.log_tail()}")
            new = self.sc.events("job-finished", SVC)[int(mark) :]
            if new:
                job = new[0]
                detail: Json = {"job": job.get("job"), "result": job.get("result")}
                for e in self.sc.events(service=SVC):
                    if float(e.get("at", 0)) >= since and e.get("event") in (
                        "build-succeeded",
                        "deployed",
                    ):
                        detail[e["event"]] = float(e.get("seconds", "nan"))
                return Finished(float(job["at"]), str(job.get("result", "?")), detail)
            time.sleep(0.05)
        return Finished(time.time(), "timeout", {})

    def stop(self) -> None:
        try:
            self.sc.stop()
        finally:
            self.sc.cleanup_keys()


class ComposeWatchTool(Tool):
    """`docker compose up -d`, then `docker compose watch` (testkit's WatchProcess)."""

    label = WATCH

    def __init__(self, ws: Workspace, log: Path) -> None:
        super().__init__(ws, log)
        self.watch = WatchProcess(ws, log, WATCH_QUIET, START_TIMEOUT)

    def start(self) -> None:
        self.watch.start()

    def settle(self) -> None:
        self.watch.settle()

    def mark(self) -> Any:
        return self.watch.size()

    def wait_finished(self, since: float, content: str, load: OpenLoad, mark: Any) -> Finished:
        """The new content served through Traefik, and compose watch, having printed something
        since the write, printed nothing for WATCH_QUIET s; `at` is its last action."""
        deadline = time.monotonic() + REDEPLOY_TIMEOUT
        size = int(mark)
        last_output: float | None = None
        while time.monotonic() < deadline:
            if self.watch.died():
                raise RuntimeError(f"compose watch exited:\n{self.watch.tail()}")
            now_size = self.watch.size()
            if now_size != size:
                size, last_output = now_size, time.time()
            if (
                last_output is not None
                and time.time() - last_output >= WATCH_QUIET
                and serves_new(load, since, content)
            ):
                # compose prints nothing after "successfully built": the recreate and the
                # starts are silent, so its last action is the last container start dockerd
                # reports, when that came after its last line
                starts = [
                    t
                    for svc, t in container_events(self.ws.name, since, time.time(), "start")
                    if svc == SVC
                ]
                at = max([last_output, *starts])
                printed = self.watch.text().encode()[int(mark) :].decode(errors="replace")
                detail: Json = {
                    "last_output_s": last_output - since,
                    "container_starts_s": [t - since for t in starts],
                    "output": printed[-2000:],
                }
                # compose watch's own words when a rebuild goes wrong (pkg/compose/watch.go)
                errors = ("Build failed", "Failed to recreate", "Application failed to start")
                bad = next((e for e in errors if e in printed), None)
                return Finished(at, f"failed: {bad}" if bad else "ok", detail)
            time.sleep(0.05)
        return Finished(time.time(), "timeout", {})

    def stop(self) -> None:
        self.watch.stop()


def make_workspace(root: Path, name: str, kind: str, watch_scale: bool = False) -> Workspace:
    """The test kit's fixture (busybox httpd FROM scratch, init: true), never published on a
    host port, images labelled for clean-up, plus each tool's way of saying "2 replicas
    behind Traefik at Host(`web.bench`)"."""
    ws = Workspace(root, name)
    extra: Json = {"build": {"context": f"./{SVC}", "labels": {IMAGE_LABEL: name}}}
    if kind == SIDECAR:
        extra["x-sidecar"] = {"port": 8080, "replicas": REPLICAS, "rule": f"Host(`{HOST}`)"}
    else:
        router = name
        if watch_scale:
            extra["scale"] = REPLICAS
        else:
            extra["deploy"] = {"replicas": REPLICAS}
        extra["develop"] = {"watch": [{"path": f"./{SVC}/www", "action": "rebuild"}]}
        extra["labels"] = {
            "traefik.enable": "true",
            f"traefik.http.routers.{router}.rule": f"Host(`{HOST}`)",
            f"traefik.http.routers.{router}.entrypoints": "web",
            f"traefik.http.services.{router}.loadbalancer.server.port": "8080",
            "traefik.docker.network": f"{name}_default",
        }
    ws.add_service(SVC, content="initial", publish=False, **extra)
    ws.write_compose()
    return ws


def running_replicas(ws: Workspace) -> int:
    try:
        return len(ws.containers(SVC))
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"docker ps failed (is dockerd restarting?): {exc.stderr}") from exc


def cleanup_docker(ws: Workspace, name: str) -> None:
    """Containers, network and images of the project; retried while dockerd is away."""
    for _ in range(3):
        try:
            ws.cleanup()
            break
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"  clean-up of {name} failed ({exc}); waiting for dockerd", flush=True)
            docker_answers(30.0)
    remove_images(name)


@contextmanager
def tool_on(
    kind: str, base: Path, logs: Path, watch_scale: bool
) -> Iterator[tuple[Tool, Traefik, Workspace]]:
    """Everything one tool needs, started, and torn down in `finally`."""
    slug = "sc" if kind == SIDECAR else "cw"
    name = f"benchzd{slug}{uuid.uuid4().hex[:6]}"
    ws = make_workspace(base / name, name, kind, watch_scale)
    redis_server: RedisServer | None = None
    traefik: Traefik
    tool: Tool
    if kind == SIDECAR:
        redis_server = RedisServer(ws.root)
        traefik = Traefik(redis_server.port, logs / f"{name}-traefik.log")
        tool = SidecarTool(ws, logs / f"{name}.log", redis_server.url)
    else:
        traefik = DockerTraefik(name, logs / f"{name}-traefik.log")
        tool = ComposeWatchTool(ws, logs / f"{name}.log")
    try:
        if redis_server is not None:
            redis_server.start()
        traefik.start()
        tool.start()
        if not poll(lambda: traefik.get(HOST) == (200, "initial"), START_TIMEOUT, 0.1):
            raise RuntimeError(f"{kind}: initial content never served through Traefik")
        yield tool, traefik, ws
    finally:
        try:
            tool.stop()
        finally:
            try:
                traefik.stop()
            finally:
                if redis_server is not None:
                    redis_server.stop()
                cleanup_docker(ws, name)
                shutil.rmtree(ws.root, ignore_errors=True)


def redeploy(tool: Tool, ws: Workspace, load: OpenLoad, i: int) -> Json:
    """Edit, wait until the tool has finished and settled, close the window: the window as
    plain data."""
    content = f"r{i}-{uuid.uuid4().hex}"
    index = ws.root / SVC / "www" / "index.html"
    mark = tool.mark()
    since = time.time()
    index.write_text(content + "\n")
    done = tool.wait_finished(since, content, load, mark)
    tool.settle()
    # the window ends TAIL s after the tool's last action, and not before it has settled
    end = max(time.time(), done.at + TAIL)
    while time.time() < end:
        time.sleep(min(0.05, max(0.0, end - time.time())))
    load.complete(end)
    rec: Json = {
        "index": i,
        "since": since,
        "end": end,
        "content": content,
        "result": done.result,
        "finished_at": done.at,
        "replicas_after": running_replicas(ws),
        "tool": {k: v for k, v in done.detail.items() if k != "output"},
        "requests": rows(load.between(since, end)),
    }
    if done.result != "ok":
        rec["tool_output"] = done.detail.get("output") or tool.log_tail()
    return rec


def bench_tool(
    kind: str, base: Path, logs: Path, redeploys: int, watch_scale: bool, records: list[Json]
) -> Json:
    """One tool's redeploys under load: its figures; each redeploy's record is appended to
    `records`."""
    print(f"\n== {kind} ==", flush=True)
    with tool_on(kind, base, logs, watch_scale) as (tool, traefik, ws):
        with OpenLoad(traefik, HOST, RATE, LOAD_MAX_SECONDS, REQUEST_TIMEOUT) as load:
            time.sleep(2.0)  # warm-up: the steady state before the first edit
            warm_end = time.time()
            load.complete(warm_end)
            warm = analyse(rows(load.between(load.started, warm_end)), load.started, "initial")
            runs: list[Json] = []
            dockerd = dockerd_identity()
            for i in range(redeploys):
                rec = redeploy(tool, ws, load, i)
                records.append(rec)
                r = analyse_redeploy(rec)
                runs.append(r)
                if dockerd_identity() != dockerd:
                    raise RuntimeError(
                        f"dockerd restarted during redeploy {i + 1} ({dockerd} -> "
                        f"{dockerd_identity()}): the figures are invalid; run again when nothing "
                        "else on the host restarts dockerd (e.g. tests/integration/test_faults.py)"
                    )
                print(
                    f"  {kind}: redeploy {i + 1}/{redeploys}: {r['failed']} failed of "
                    f"{r['requests']} {r['failed_by_kind'] or ''}, live after "
                    f"{fmt(r['edit_to_live'], ' s')}, finished after {fmt(r['finished_s'], ' s')}"
                    f", {r['replicas_after']} replicas, {r['result']}",
                    flush=True,
                )
        everything = rows(load.snapshot())
        counters = {
            "seconds": load.stopped - load.started,
            "late_ticks": load.late_ticks,
            "replicas_final": running_replicas(ws),
        }
    return summarise(redeploys, runs, warm, everything, counters)
