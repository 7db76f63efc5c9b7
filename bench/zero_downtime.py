"""Zero-downtime benchmark: redeploys under load, the sidecar against `docker compose watch`.

Both tools run one after the other (never at the same time) on the same fixture: a busybox
httpd service built FROM scratch serving `www/index.html`, `init: true`, 2 replicas, never
published on a host port, behind a real Traefik on 127.0.0.1:

- sidecar: `python -m sidecar run` with `x-sidecar: {port: 8080, replicas: 2, rule:
  Host(`web.bench`)}`, its own redis-server, and Traefik's Redis provider on that Redis;
- compose watch: `deploy.replicas: 2`, `develop.watch` rebuild rule on www/, and Traefik's
  Docker provider (labels), which is what one would use without the sidecar.

For each tool, under a steady open-loop load of ~50 requests/s through Traefik (fresh
connection per request, 1 s timeout), N consecutive edits of www/index.html; per redeploy:
failed requests from the write until the tool has settled, and edit-to-live (see
bench/README.md for the exact definitions).

Run from the repository root: `python3 -m bench.zero_downtime [--redeploys 10] [--json F]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    Json,
    environment,
    fmt,
    median,
    ratio,
    results_dir,
    table,
    verdict,
    write_json,
)
from testkit.compose_watch import WatchProcess
from testkit.docker import container_events
from testkit.redis_server import RedisServer
from testkit.sidecar import Sidecar
from testkit.traefik import Traefik
from testkit.wait import file_tail, poll, run
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


# --- load: open loop, one fresh connection per request ---------------------------------------
@dataclass(frozen=True)
class Sample:
    sent: float  # unix time the request was started
    done: float  # unix time it completed (or failed)
    status: int  # 0: connection error or timeout
    body: str


class OpenLoad:
    """A steady, bounded stream of GETs through Traefik (loopback only) at `rate` per second.

    Open loop: a request is started every 1/rate s whatever the previous ones are doing (they
    run in a pool), so a request that hangs until its timeout does not slow the load down and
    cannot hide the failures of the requests that would have followed it. (The harness's
    `Load` is closed loop, one request after the other, with a 2 s timeout.)"""

    def __init__(
        self, traefik: Traefik, host: str, rate: float = RATE, max_seconds: float = LOAD_MAX_SECONDS
    ) -> None:
        self.traefik = traefik
        self.host = host
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.samples: list[Sample] = []
        self.late_ticks = 0  # ticks started more than one interval late (an overloaded host)
        self._lock = threading.Lock()
        self._pending: dict[int, float] = {}  # request number -> unix time it was due
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=int(rate * REQUEST_TIMEOUT * 2) + 8)
        self._thread = threading.Thread(target=self._run, name="open-load", daemon=True)
        self.started = 0.0
        self.stopped = 0.0

    def __enter__(self) -> OpenLoad:
        self.started = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pool.shutdown(wait=True)
        self.stopped = time.time()

    def _one(self, n: int) -> None:
        sent = time.time()
        try:
            status, body = self.traefik.get(self.host, timeout=REQUEST_TIMEOUT)
        except Exception as exc:  # Traefik.get maps socket/HTTP errors; anything else too
            status, body = 0, f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._pending.pop(n, None)
        with self._lock:
            self.samples.append(Sample(sent, time.time(), status, body))

    def _run(self) -> None:
        t0 = time.monotonic()
        next_at = t0
        n = 0
        while not self._stop.is_set() and time.monotonic() - t0 < self.max_seconds:
            if time.monotonic() - next_at > self.interval:
                self.late_ticks += 1
            with self._lock:
                self._pending[n] = time.time()
            self._pool.submit(self._one, n)
            n += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def complete(self, before: float) -> None:
        """Wait until every request due before `before` has its answer (at most the request
        timeout, plus a margin), so a window is analysed with all of its requests."""
        deadline = time.monotonic() + REQUEST_TIMEOUT + 2.0
        while time.monotonic() < deadline:
            with self._lock:
                if not any(due < before for due in self._pending.values()):
                    return
            time.sleep(0.02)

    def between(self, start: float, end: float) -> list[Sample]:
        """Requests sent in [start, end), by send time."""
        with self._lock:
            return sorted((s for s in self.samples if start <= s.sent < end), key=lambda s: s.sent)

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return sorted(self.samples, key=lambda s: s.sent)


def ok(sample: Sample) -> bool:
    return sample.status == 200


def serves_new(load: OpenLoad, since: float, content: str) -> bool:
    return any(s.status == 200 and s.body == content for s in load.between(since, time.time()))


# --- proxies -----------------------------------------------------------------------------------
class DockerTraefik(Traefik):
    """Traefik with its Docker provider: what compose users put in front of replicas.

    Scoped to the benchmark's compose project by a constraint, so labelled containers of
    other projects on the same dockerd are never routed to."""

    def __init__(self, project: str, log: Path) -> None:
        super().__init__(0, log)
        self.project = project

    def provider_args(self) -> list[str]:
        endpoint = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return [
            "--providers.docker=true",
            f"--providers.docker.endpoint={endpoint}",
            "--providers.docker.exposedbydefault=false",
            f"--providers.docker.constraints=Label(`com.docker.compose.project`,`{self.project}`)",
        ]


# --- the two tools -----------------------------------------------------------------------------
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
    """`docker compose up -d`, then `docker compose watch` (bench.common.WatchProcess)."""

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


# --- fixture -----------------------------------------------------------------------------------
def make_workspace(root: Path, name: str, kind: str, watch_scale: bool = False) -> Workspace:
    """The harness fixture (busybox httpd FROM scratch, init: true), never published on a
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


def dockerd_identity() -> str:
    """pid and start time of the running dockerd, to notice a restart during a measurement
    (another job on the host may restart it, and that invalidates the figures)."""
    try:
        pid = Path("/var/run/docker.pid").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{pid}@{stat.rsplit(')', 1)[1].split()[19]}"  # field 22: starttime
    except (OSError, IndexError):
        return "?"


def docker_answers(timeout: float) -> bool:
    return poll(lambda: run("docker", "info", timeout=30).returncode == 0, timeout, 0.5)


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


# --- measurement -------------------------------------------------------------------------------
def analyse(samples: list[Sample], since: float, content: str) -> Json:
    """Figures of one redeploy window (samples sorted by send time, all sent in it)."""
    failed = [s for s in samples if not ok(s)]
    kinds = Counter("error" if s.status == 0 else str(s.status) for s in failed)
    # edit-to-live: the first request of the final unbroken run of new-content answers
    live: float | None = None
    for s in reversed(samples):
        if s.status == 200 and s.body == content:
            live = s.sent - since
        else:
            break
    first_new = next((s.sent - since for s in samples if ok(s) and s.body == content), None)
    old = [s for s in samples if ok(s) and s.body != content]
    return {
        "requests": len(samples),
        "failed": len(failed),
        "failed_by_kind": dict(kinds),
        "failed_examples": [f"{s.sent - since:+.3f}s {s.status} {s.body[:120]}" for s in failed][
            :5
        ],
        "failed_first_last_s": (
            [failed[0].sent - since, failed[-1].sent - since] if failed else None
        ),
        "edit_to_live": live,
        "first_new": first_new,
        "last_old": old[-1].sent - since if old else None,
        "old_after_first_new": sum(
            1 for s in old if first_new is not None and s.sent - since > first_new
        ),
    }


def redeploy(tool: Tool, ws: Workspace, load: OpenLoad, i: int) -> Json:
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
    samples = load.between(since, end)
    out = analyse(samples, since, content)
    out.update(
        {
            "index": i,
            "result": done.result,
            "finished_s": done.at - since,
            "window_s": end - since,
            "replicas_after": running_replicas(ws),
            "tool": {k: v for k, v in done.detail.items() if k != "output"},
        }
    )
    if done.result != "ok":
        out["tool_output"] = done.detail.get("output") or tool.log_tail()
    return out


def bench_tool(kind: str, base: Path, logs: Path, redeploys: int, watch_scale: bool) -> Json:
    print(f"\n== {kind} ==", flush=True)
    with tool_on(kind, base, logs, watch_scale) as (tool, traefik, ws):
        with OpenLoad(traefik, HOST) as load:
            time.sleep(2.0)  # warm-up: the steady state before the first edit
            warm_end = time.time()
            load.complete(warm_end)
            warm = analyse(load.between(load.started, warm_end), load.started, "initial")
            runs: list[Json] = []
            dockerd = dockerd_identity()
            for i in range(redeploys):
                r = redeploy(tool, ws, load, i)
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
        everything = load.snapshot()
        duration = load.stopped - load.started
        replicas_final = running_replicas(ws)
    in_windows = sum(r["requests"] for r in runs)
    failed_total = sum(r["failed"] for r in runs)
    failed_all = sum(1 for s in everything if not ok(s))
    lives = [r["edit_to_live"] for r in runs if r["edit_to_live"] is not None]
    finished = [r["finished_s"] for r in runs]
    first_new = [r["first_new"] for r in runs if r["first_new"] is not None]
    return {
        "redeploys": redeploys,
        "per_redeploy": runs,
        "warmup": warm,
        "requests_sent": len(everything),
        "requests_in_windows": in_windows,
        "load_seconds": duration,
        "achieved_rate": len(everything) / duration if duration > 0 else float("nan"),
        "late_ticks": load.late_ticks,
        "failed_in_windows": failed_total,
        "failed_per_redeploy": [r["failed"] for r in runs],
        "failed_outside_windows": failed_all - failed_total,
        "failed_by_kind": dict(sum((Counter(r["failed_by_kind"]) for r in runs), Counter[str]())),
        "edit_to_live": {
            "seconds": [r["edit_to_live"] for r in runs],
            "median": median(lives),
            "min": min(lives) if lives else float("nan"),
            "max": max(lives) if lives else float("nan"),
            "not_live": len(runs) - len(lives),
        },
        "first_new_median": median(first_new),
        "finished": {"median": median(finished), "max": max(finished)},
        "redeploys_not_ok": sum(1 for r in runs if r["result"] != "ok"),
        "replicas_after": [r["replicas_after"] for r in runs],
        "replicas_final": replicas_final,
    }


# --- report ------------------------------------------------------------------------------------
def tool_table(label: str, res: Json) -> str:
    e = res["edit_to_live"]
    rows = [
        ["redeploys (not ok)", f"{res['redeploys']} ({res['redeploys_not_ok']})"],
        [
            "requests sent (in redeploy windows)",
            f"{res['requests_sent']} ({res['requests_in_windows']})",
        ],
        ["achieved rate (req/s)", fmt(res["achieved_rate"])],
        ["failed requests in redeploy windows", str(res["failed_in_windows"])],
        ["  per redeploy", " ".join(str(n) for n in res["failed_per_redeploy"])],
        ["  by kind", str(res["failed_by_kind"] or "-")],
        ["failed requests outside the windows", str(res["failed_outside_windows"])],
        ["edit-to-live median (s)", fmt(e["median"])],
        ["edit-to-live min / max (s)", f"{fmt(e['min'])} / {fmt(e['max'])}"],
        ["redeploys never live in their window", str(e["not_live"])],
        ["first new-content answer median (s)", fmt(res["first_new_median"])],
        [
            "write -> finished median / max (s)",
            f"{fmt(res['finished']['median'])} / {fmt(res['finished']['max'])}",
        ],
        ["running replicas after each redeploy", " ".join(str(n) for n in res["replicas_after"])],
    ]
    return f"{label}:\n" + table(["metric", "value"], rows)


def report(sc: Json, cw: Json) -> tuple[str, Json]:
    def row(name: str, a: float | int, b: float | int, with_ratio: bool = True) -> list[str]:
        return [name, fmt(a), fmt(b), ratio(a, b) if with_ratio else ""]

    rows = [
        row("redeploys", sc["redeploys"], cw["redeploys"], False),
        row("requests sent", sc["requests_sent"], cw["requests_sent"], False),
        row(
            "failed requests (all redeploy windows)",
            sc["failed_in_windows"],
            cw["failed_in_windows"],
        ),
        row(
            "failed requests per redeploy, max",
            max(sc["failed_per_redeploy"]),
            max(cw["failed_per_redeploy"]),
        ),
        row(
            "failed requests outside the windows",
            sc["failed_outside_windows"],
            cw["failed_outside_windows"],
            False,
        ),
        row("edit-to-live median (s)", sc["edit_to_live"]["median"], cw["edit_to_live"]["median"]),
        row("edit-to-live max (s)", sc["edit_to_live"]["max"], cw["edit_to_live"]["max"]),
        row("write -> finished median (s)", sc["finished"]["median"], cw["finished"]["median"]),
    ]
    target_ok = (
        sc["failed_in_windows"] == 0
        and sc["failed_outside_windows"] == 0
        and sc["redeploys"] >= 10
        and sc["redeploys_not_ok"] == 0
    )
    targets = {"sidecar_zero_failed_requests_over_10_redeploys": target_ok}
    lines = [
        tool_table(SIDECAR, sc),
        "",
        tool_table(WATCH, cw),
        "",
        "comparison:",
        table(["metric", SIDECAR, WATCH, "ratio sidecar/watch"], rows),
        "",
        "target (sidecar):",
        f"  0 failed requests over {sc['redeploys']} redeploys (>= 10): got "
        f"{sc['failed_in_windows'] + sc['failed_outside_windows']}, compose watch "
        f"{cw['failed_in_windows'] + cw['failed_outside_windows']} in the same run -> "
        f"{verdict(target_ok)}",
    ]
    for label, res in ((SIDECAR, sc), (WATCH, cw)):
        if any(n != REPLICAS for n in res["replicas_after"]):
            lines.append(
                f"  note: {label} did not keep {REPLICAS} replicas running "
                f"(after each redeploy: {res['replicas_after']})"
            )
    return "\n".join(lines), targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.zero_downtime",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--redeploys", type=int, default=10, help="edits per tool (>= 10)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    parser.add_argument("--dir", metavar="DIR", help="where to create the fixtures (tmp)")
    parser.add_argument(
        "--watch-scale",
        action="store_true",
        help="compose watch fixture with `scale: 2` instead of `deploy.replicas: 2` (compose "
        "watch's rebuild keeps 1 of the deploy.replicas, see bench/README.md)",
    )
    args = parser.parse_args(argv)
    if args.redeploys < 10:
        parser.error("--redeploys must be >= 10")

    logs = results_dir("zero-downtime")
    base = Path(tempfile.mkdtemp(prefix="bench-zd-", dir=args.dir))
    env = environment()
    print(f"logs: {logs}\nfixtures: {base}", flush=True)
    t0 = time.monotonic()
    try:
        sc = bench_tool(SIDECAR, base, logs, args.redeploys, args.watch_scale)
        cw = bench_tool(WATCH, base, logs, args.redeploys, args.watch_scale)
    except RuntimeError as exc:
        print(f"\nbenchmark aborted (everything it started is cleaned up): {exc}", flush=True)
        return 2
    finally:
        shutil.rmtree(base, ignore_errors=True)

    text, targets = report(sc, cw)
    print("\n" + text)
    print(f"\ntotal time {time.monotonic() - t0:.0f} s")
    write_json(
        args.json,
        {
            "benchmark": "zero_downtime",
            "settings": {
                "rate": RATE,
                "request_timeout_s": REQUEST_TIMEOUT,
                "tail_s": TAIL,
                "sidecar_quiet_s": SIDECAR_QUIET,
                "watch_quiet_s": WATCH_QUIET,
                "replicas": REPLICAS,
                "host": HOST,
            },
            "environment": env,
            "logs": str(logs),
            "sidecar": sc,
            "compose_watch": cw,
            "compose_watch_replicas_key": "scale" if args.watch_scale else "deploy.replicas",
            "targets": targets,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
