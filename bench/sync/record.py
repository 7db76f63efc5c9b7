"""Drives one tool through the sync benchmark's phases on real fixtures and returns the
figures of each phase (the arithmetic is in `analyse`)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

from bench import rebuild
from bench.common import Json, fmt
from bench.sync.analyse import bulk_live, delta, edits_figures, never
from bench.sync.fixture import (
    BRANCH,
    INITIAL,
    PER_DIR,
    SVC,
    rebuild_workspace,
    served_workspace,
    sync_workspace,
)
from bench.sync.tools import (
    SIDECAR,
    EditTool,
    ServedSidecar,
    ServedTool,
    ServedWatch,
    SidecarTool,
    WatchTool,
)
from bench.zero_downtime import analyse as zda
from bench.zero_downtime import record as zd
from testkit.docker import container_creates
from testkit.http import Entry, fetch, serves
from testkit.load import OpenLoad
from testkit.redis_server import RedisServer
from testkit.traefik import DockerTraefik, Traefik
from testkit.wait import poll, run
from testkit.workspace import Workspace

RATE = 50.0  # requests per second, open loop
REQUEST_TIMEOUT = 1.0
LOAD_MAX_SECONDS = 600.0
WARMUP = 1.0  # load before the first edit (the served phase: 2 s, as bench/zero_downtime)
START_TIMEOUT = 120.0
EDIT_TIMEOUT = 60.0
TOUCH_WAIT = 2.0  # > either tool's debounce (sidecar 50 ms, compose watch ~500 ms)
DELETE_WAIT = 10.0
BULK_WAIT = 20.0
PROBES = 8  # parallel GETs when checking every file of the bulk change


class Part(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


@contextmanager
def running(tool: Part, ws: Workspace, *parts: Part) -> Iterator[None]:
    """`parts` (a Traefik) started, then the tool; in `finally` everything stopped and the
    project's containers, network, images and files removed."""
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, ws.root, ignore_errors=True)
        stack.callback(zd.cleanup_docker, ws, ws.name)
        for part in (*parts, tool):
            stack.callback(part.stop)
            part.start()
        yield


def project(phase: str, kind: str) -> str:
    return f"benchsy{phase}{'sc' if kind == SIDECAR else 'cw'}{uuid.uuid4().hex[:6]}"


def wait_initial(ws: Workspace, kind: str) -> None:
    if not poll(serves(ws.ports[SVC], INITIAL), START_TIMEOUT, 0.05):
        raise RuntimeError(f"{kind}: {SVC} never served its initial content")


# --- phases on the published fixture ---------------------------------------------------------
def edits_under_load(tool: EditTool, ws: Workspace, edits: int) -> Json:
    """bench/rebuild's edit-to-live (edits of www/index.html, GET every 10 ms until served),
    under an open-loop load of RATE requests/s on the published port; the load's failed
    requests and the containers created during the edits."""
    port = ws.ports[SVC]
    before = tool.counters()
    with OpenLoad(Entry(port), "127.0.0.1", RATE, LOAD_MAX_SECONDS, REQUEST_TIMEOUT) as load:
        time.sleep(WARMUP)
        since = time.time()
        measured = rebuild.measure_edits(tool, ws, SVC, edits)
        until = time.time()
        load.complete(until)
    warm = [r for r in load.between(load.started, since) if not r.ok]
    creates = container_creates(ws.name, since, until).get(SVC, 0)
    out = edits_figures(
        measured, zd.rows(load.between(since, until)), creates, delta(before, tool.counters())
    )
    out["failed_before_first_edit"] = len(warm)
    print(
        f"  {tool.label}: {out['failed']} failed of {out['requests']} requests, "
        f"{creates} containers created, counters {out['counters']}",
        flush=True,
    )
    return out


def touch(tool: EditTool, ws: Workspace) -> Json:
    """os.utime on every file and directory under www/: what the tool synced or built."""
    www = ws.root / SVC / "www"
    before = tool.counters()
    since = time.time()
    paths = [www, *www.rglob("*")]
    for path in paths:
        os.utime(path)
    time.sleep(TOUCH_WAIT)
    tool.settle()
    added = delta(before, tool.counters())
    out = {
        "paths_touched": len(paths),
        "syncs": added["syncs"],
        "builds": added["builds"],
        "creates": container_creates(ws.name, since, time.time()).get(SVC, 0),
        "counters": added,
    }
    print(f"  {tool.label}: touch of {len(paths)} paths -> {added['syncs']} syncs", flush=True)
    return out


def delete(tool: EditTool, ws: Workspace) -> Json:
    """A file created and served, then deleted: time until GET answers 404."""
    rel = "gone.html"
    content = f"gone-{uuid.uuid4().hex}"
    port = ws.ports[SVC]
    path = ws.write(f"{SVC}/www/{rel}", content + "\n")
    if not poll(serves(port, content, f"/{rel}"), EDIT_TIMEOUT):
        raise RuntimeError(f"{tool.label}: /{rel} was never served")
    tool.settle()
    before = tool.counters()
    since, t0 = time.time(), time.monotonic()
    path.unlink()
    gone: float | None = None
    statuses: list[list[float]] = []  # [status, seconds it was first seen] per change
    while time.monotonic() - t0 < DELETE_WAIT:
        status, _ = Entry(port).get("127.0.0.1", f"/{rel}", timeout=0.25)
        if not statuses or statuses[-1][0] != status:
            statuses.append([status, time.monotonic() - t0])
        if status == 404:
            gone = time.monotonic() - t0
            break
        time.sleep(0.02)
    tool.settle()
    added = delta(before, tool.counters())
    out = {
        "wait": DELETE_WAIT,
        "seconds": gone,
        "statuses": statuses,
        "creates": container_creates(ws.name, since, time.time()).get(SVC, 0),
        "counters": added,
        "phases": tool.phases(SVC, since),
    }
    print(
        f"  {tool.label}: delete -> 404 after {never(gone, DELETE_WAIT)} {added['messages']}",
        flush=True,
    )
    return out


def unserved(port: int, files: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The files that GET does not answer with their content (PROBES requests at a time)."""
    with ThreadPoolExecutor(PROBES) as pool:
        got = list(pool.map(lambda f: fetch(port, f"/{f[0]}"), files))
    return [f for f, body in zip(files, got, strict=True) if body != f[1]]


def served_within(port: int, files: Sequence[tuple[str, str]], t0: float) -> float | None:
    """GET the files not served yet, in order, each round stopping at the first that is
    not (so a probe costs one request while nothing has arrived, and does not compete with
    the tool for the CPU), until none is left: seconds since `t0` (monotonic) when the last
    one was served, None if not by t0 + BULK_WAIT."""
    pending = list(files)
    while pending:
        while pending and fetch(port, f"/{pending[0][0]}") == pending[0][1]:
            pending.pop(0)
        if not pending:
            break
        if time.monotonic() - t0 > BULK_WAIT:
            return None
        time.sleep(0.02)
    return time.monotonic() - t0


def bulk(tool: EditTool, ws: Workspace, files: list[tuple[str, str]]) -> Json:
    """`git checkout other`: len(files) files changed or added under www/. Time until the
    last is served: every PER_DIR-th file and the last (git writes in path order) polled
    until all are served, then every file checked (PROBES at a time); missing ones polled
    again. Afterwards, once the tool settled, every file checked once more (files missing
    after)."""
    port = ws.ports[SVC]
    before = tool.counters()
    since, t0 = time.time(), time.monotonic()
    checkout = run("git", "checkout", "-q", BRANCH, cwd=ws.root)
    checkout_s = time.monotonic() - t0
    if checkout.returncode != 0:
        raise RuntimeError(f"git checkout {BRANCH} failed: {checkout.stderr[-2000:]}")
    sentinels = [*files[::PER_DIR], files[-1]]
    sentinels_s = served_within(port, sentinels, t0)
    missing = unserved(port, files)
    first_missing = len(missing)
    all_s = served_within(port, missing, t0) if missing else time.monotonic() - t0
    live = bulk_live(sentinels_s, first_missing, all_s)
    time.sleep(1.0)
    tool.settle()
    after = unserved(port, files)
    added = delta(before, tool.counters())
    out = {
        "files": len(files),
        "wait": BULK_WAIT,
        "checkout_s": checkout_s,
        "sentinels": len(sentinels),
        "sentinels_s": sentinels_s,
        "missing_at_first_sweep": first_missing,
        "all_s": all_s,
        "live_s": live,
        "missing_after": len(after),
        "missing_examples": [f[0] for f in after[:5]],
        "creates": container_creates(ws.name, since, time.time()).get(SVC, 0),
        "counters": added,
        "phases": tool.phases(SVC, since),
    }
    print(
        f"  {tool.label}: {len(files)}-file branch switch -> live after "
        f"{never(live, BULK_WAIT)}, {len(after)} missing after, counters {added}",
        flush=True,
    )
    return out


def edit_tool(kind: str, ws: Workspace, log: Path, redis_url: str) -> EditTool:
    return SidecarTool(ws, log, redis_url) if kind == SIDECAR else WatchTool(ws, log)


def bench_sync(kind: str, base: Path, logs: Path, redis_url: str, edits: int) -> Json:
    """Phases 1-4 on the sync fixture: edits under load, touch, delete, branch switch."""
    name = project("sy", kind)
    ws, files = sync_workspace(base / name, name)
    tool = edit_tool(kind, ws, logs / f"{name}.log", redis_url)
    print(f"\n== {kind}: sync fixture ({name}) ==", flush=True)
    with running(tool, ws):
        wait_initial(ws, kind)
        out = {"edits": edits_under_load(tool, ws, edits)}
        out["touch"] = touch(tool, ws)
        out["delete"] = delete(tool, ws)
        out["bulk"] = bulk(tool, ws, files)
    return out


def bench_rebuild(kind: str, base: Path, logs: Path, redis_url: str, edits: int) -> Json:
    """Phase 6: `rebuild` of `web` alone on its network, edits under load."""
    name = project("rb", kind)
    ws = rebuild_workspace(base / name, name)
    tool = edit_tool(kind, ws, logs / f"{name}.log", redis_url)
    print(f"\n== {kind}: rebuild fixture, web alone ({name}) ==", flush=True)
    with running(tool, ws):
        wait_initial(ws, kind)
        return {"rebuild": edits_under_load(tool, ws, edits)}


# --- sync+restart of the served fixture ------------------------------------------------------
def restarts_under_load(tool: ServedTool, traefik: Traefik, ws: Workspace, edits: int) -> Json:
    """bench/zero_downtime's redeploy windows (its `redeploy`, `analyse_redeploy`,
    `summarise`), each edit now a sync+restart."""
    before = tool.counters()
    with OpenLoad(traefik, zd.HOST, RATE, LOAD_MAX_SECONDS, REQUEST_TIMEOUT) as load:
        time.sleep(2 * WARMUP)
        warm_end = time.time()
        load.complete(warm_end)
        warm = zda.analyse(zd.rows(load.between(load.started, warm_end)), load.started, INITIAL)
        runs: list[Json] = []
        for i in range(edits):
            r = zda.analyse_redeploy(zd.redeploy(tool, ws, load, i))
            runs.append(r)
            print(
                f"  {tool.label}: sync+restart {i + 1}/{edits}: {r['failed']} failed of "
                f"{r['requests']} {r['failed_by_kind'] or ''}, live after "
                f"{fmt(r['edit_to_live'], ' s')}, finished after {fmt(r['finished_s'], ' s')}, "
                f"{r['replicas_after']} replicas, {r['result']}",
                flush=True,
            )
    load_figures = {
        "seconds": load.stopped - load.started,
        "late_ticks": load.late_ticks,
        "replicas_final": zd.running_replicas(ws),
    }
    out = zda.summarise(edits, runs, warm, zd.rows(load.snapshot()), load_figures)
    out["counters"] = delta(before, tool.counters())
    return out


def bench_restart(kind: str, base: Path, logs: Path, redis: RedisServer, edits: int) -> Json:
    """Phase 5: sync+restart of 2 served replicas under load through Traefik."""
    name = project("sr", kind)
    ws = served_workspace(base / name, name, kind)
    log = logs / f"{name}.log"
    traefik: Traefik
    tool: ServedTool
    if kind == SIDECAR:
        traefik = Traefik(redis.port, logs / f"{name}-traefik.log")
        tool = ServedSidecar(ws, log, redis.url)
    else:
        traefik = DockerTraefik(name, logs / f"{name}-traefik.log")
        tool = ServedWatch(ws, log)
    print(f"\n== {kind}: served fixture, 2 replicas, sync+restart ({name}) ==", flush=True)
    with running(tool, ws, traefik):
        if not poll(lambda: traefik.get(zd.HOST) == (200, INITIAL), START_TIMEOUT, 0.1):
            raise RuntimeError(f"{kind}: initial content never served through Traefik")
        return {"restart": restarts_under_load(tool, traefik, ws, edits)}
