"""Rebuild benchmark: the sidecar against `docker compose watch` (action: rebuild).

Both tools run one after the other (never at the same time) on the same fixture: busybox
httpd services built FROM scratch, `init: true`, each on a fixed 127.0.0.1 port. Measured:

- edit-to-live: from writing new content to `www/index.html` until GET returns it;
- builds caused by touching (os.utime) every file of the build context;
- builds per service caused by a burst of new files written into two services' www/.

Run from the repository root: `python3 -m bench.rebuild [--edits 7] [--burst 300] [--json F]`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
from testkit.docker import container_creates, container_events
from testkit.http import serves
from testkit.redis_server import RedisServer
from testkit.sidecar import Sidecar
from testkit.wait import file_tail, poll
from testkit.workspace import IMAGE_LABEL, Workspace, remove_images

EDIT_TIMEOUT = 60.0
SETTLE_TIMEOUT = 120.0
SIDECAR_QUIET = 1.0
WATCH_QUIET = 1.5
# compose watch says this once per rebuild it starts, naming the services (Go %q of a slice)
REBUILDING = re.compile(r"Rebuilding service\(s\) \[([^\]]*)\]")

SIDECAR = "sidecar"
WATCH = "compose watch"


# --- the two tools behind one interface -----------------------------------------------------
class Tool:
    label = ""

    def __init__(self, ws: Workspace, log: Path) -> None:
        self.ws = ws
        self.log = log

    def start(self) -> None:
        raise NotImplementedError

    def settle(self) -> None:
        raise NotImplementedError

    def builds(self) -> dict[str, int]:
        """Builds started so far, per service."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def phases(self, svc: str, since: float) -> dict[str, float]:
        """Where the time of the change written at unix time `since` went, if the tool says."""
        return {}

    def log_tail(self, lines: int = 40) -> str:
        return file_tail(self.log, lines)


class SidecarTool(Tool):
    """`python -m sidecar run` (testkit `Sidecar`) with the benchmark's private Redis."""

    label = SIDECAR

    def __init__(self, ws: Workspace, log: Path, redis_url: str) -> None:
        super().__init__(ws, log)
        self.sc = Sidecar(ws, redis_url, log)

    def start(self) -> None:
        self.sc.start()  # waits for the `ready` event
        self.settle()

    def settle(self) -> None:
        # no build in flight per the events stream, and no new event for SIDECAR_QUIET
        self.sc.settle(quiet=SIDECAR_QUIET, timeout=SETTLE_TIMEOUT)

    def builds(self) -> dict[str, int]:
        return {svc: self.sc.builds(svc) for svc in self.ws.services}

    def phases(self, svc: str, since: float) -> dict[str, float]:
        """From the events stream: write -> build-started, build, deploy (recreate)."""
        out: dict[str, float] = {}
        for e in self.sc.events(service=svc):
            if float(e.get("at", 0)) < since:
                continue
            kind = e.get("event")
            if kind == "build-started" and "write_to_build_started" not in out:
                out["write_to_build_started"] = float(e["at"]) - since
            elif kind == "build-succeeded" and "build" not in out:
                out["build"] = float(e.get("seconds", "nan"))
            elif kind == "deployed" and "deploy" not in out:
                out["deploy"] = float(e.get("seconds", "nan"))
        return out

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
        self.watch = WatchProcess(ws, log, WATCH_QUIET, SETTLE_TIMEOUT)

    def start(self) -> None:
        self.watch.start()

    def settle(self) -> None:
        self.watch.settle()

    def builds(self) -> dict[str, int]:
        counts = dict.fromkeys(self.ws.services, 0)
        for match in REBUILDING.finditer(self.watch.text()):
            for svc in re.findall(r'"([^"]+)"', match.group(1)):
                counts[svc] = counts.get(svc, 0) + 1
        return counts

    def stop(self) -> None:
        self.watch.stop()


# --- fixture ---------------------------------------------------------------------------------
def make_workspace(root: Path, name: str, services: list[str], develop: bool) -> Workspace:
    """The testkit fixture (busybox httpd FROM scratch, init: true, fixed loopback port);
    images labelled for clean-up. `develop` adds compose watch's rule on each www dir."""
    ws = Workspace(root, name)
    for svc in services:
        extra: Json = {"build": {"context": f"./{svc}", "labels": {IMAGE_LABEL: name}}}
        if develop:
            extra["develop"] = {"watch": [{"path": f"./{svc}/www", "action": "rebuild"}]}
        ws.add_service(svc, content=f"{svc}-initial", **extra)
    ws.write_compose()
    return ws


@contextmanager
def tool_on(
    kind: str, base: Path, services: list[str], logs: Path, redis_url: str, tag: str
) -> Iterator[tuple[Tool, Workspace]]:
    slug = "sc" if kind == SIDECAR else "cw"
    name = f"benchrb{slug}{tag}{uuid.uuid4().hex[:6]}"
    ws = make_workspace(base / name, name, services, develop=kind == WATCH)
    log = logs / f"{name}.log"
    tool: Tool = SidecarTool(ws, log, redis_url) if kind == SIDECAR else ComposeWatchTool(ws, log)
    try:
        tool.start()
        for svc in services:
            if not poll(serves(ws.ports[svc], f"{svc}-initial"), 60, 0.05):
                raise RuntimeError(f"{kind}: {svc} never served its initial content")
        yield tool, ws
    finally:
        try:
            tool.stop()
        finally:
            ws.cleanup()
            remove_images(name)
            shutil.rmtree(ws.root, ignore_errors=True)


# --- measurements ----------------------------------------------------------------------------
def stats(values: list[float]) -> Json:
    return {
        "seconds": values,
        "median": median(values),
        "min": min(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
    }


def measure_edits(tool: Tool, ws: Workspace, svc: str, edits: int) -> Json:
    """Edit-to-live by HTTP, and edit-to-new-container-start by `docker events` (the latter
    is independent of the probe: see bench/README.md about the neighbour-cache delay)."""
    index = ws.root / svc / "www" / "index.html"
    port = ws.ports[svc]
    live: list[float] = []
    started: list[float] = []
    phases: dict[str, list[float]] = {}
    timeouts = 0
    for i in range(edits):
        content = f"edit-{i}-{uuid.uuid4().hex}"
        wall0 = time.time()
        t0 = time.monotonic()
        index.write_text(content + "\n")
        ok = poll(serves(port, content), EDIT_TIMEOUT)
        took = time.monotonic() - t0
        if ok:
            live.append(took)
        else:
            timeouts += 1
        tool.settle()
        starts = [t for s, t in container_events(ws.name, wall0, time.time(), "start") if s == svc]
        if starts:
            started.append(starts[0] - wall0)
        for phase, seconds in tool.phases(svc, wall0).items():
            phases.setdefault(phase, []).append(seconds)
        print(
            f"  {tool.label}: edit {i + 1}/{edits}: live after "
            f"{fmt(took, ' s') if ok else 'timeout'}, new container started after "
            f"{fmt(starts[0] - wall0, ' s') if starts else '-'}",
            flush=True,
        )
    return {
        "edits": edits,
        "timeouts": timeouts,
        **stats(live),
        "container_start": stats(started),
        "phases_median": {k: median(v) for k, v in phases.items()},
    }


def measure_touch(tool: Tool, ws: Workspace, svc: str) -> Json:
    ctx = ws.root / svc
    before = tool.builds()
    since = time.time()
    paths = [ctx, *ctx.rglob("*")]
    for path in paths:
        os.utime(path)
    time.sleep(2.0)  # > either tool's debounce (sidecar 50 ms, compose watch ~500 ms)
    tool.settle()
    after = tool.builds()
    return {
        "paths_touched": len(paths),
        "builds": after.get(svc, 0) - before.get(svc, 0),
        "recreates": container_creates(ws.name, since, time.time()).get(svc, 0),
    }


def measure_burst(tool: Tool, ws: Workspace, files: int) -> Json:
    services = list(ws.services)
    before = tool.builds()
    since = time.time()
    t0 = time.monotonic()
    for i in range(files):
        for svc in services:
            (ws.root / svc / "www" / f"burst{i}.html").write_text(f"{svc}-{i}\n")
    written = time.monotonic() - t0
    last = f"/burst{files - 1}.html"
    live: dict[str, float | None] = {}
    for svc in services:
        ok = poll(serves(ws.ports[svc], f"{svc}-{files - 1}", last), EDIT_TIMEOUT)
        live[svc] = time.monotonic() - t0 if ok else None
    time.sleep(2.0)
    tool.settle()
    after = tool.builds()
    creates = container_creates(ws.name, since, time.time())
    return {
        "files_per_service": files,
        "write_seconds": written,
        "to_live_seconds": live,
        "builds": {s: after.get(s, 0) - before.get(s, 0) for s in services},
        "recreates": {s: creates.get(s, 0) for s in services},
    }


def bench_tool(
    kind: str, base: Path, logs: Path, redis_url: str, edits: int, burst: int, alone: bool
) -> Json:
    print(f"\n== {kind} ==", flush=True)
    out: Json = {}
    # A never-edited neighbour on the project network, as nearly every real project has
    # (a database, a cache): it keeps the network's bridge up while `web` is recreated, so
    # the host's neighbour cache survives and the probe measures the tools, not the 1 s ARP
    # retry that a bridge with no port left triggers (see bench/README.md). --alone drops it.
    edit_fixture = ["web"] if alone else ["web", "db"]
    with tool_on(kind, base, edit_fixture, logs, redis_url, "e") as (tool, ws):
        out["edit_to_live"] = measure_edits(tool, ws, "web", edits)
        out["touch"] = measure_touch(tool, ws, "web")
        print(f"  {kind}: touch -> {out['touch']['builds']} builds", flush=True)
    with tool_on(kind, base, ["a", "b"], logs, redis_url, "b") as (tool, ws):
        out["burst"] = measure_burst(tool, ws, burst)
        print(f"  {kind}: burst -> builds {out['burst']['builds']}", flush=True)
    return out


# --- report ----------------------------------------------------------------------------------
def row(
    label: str, a: float | int | None, b: float | int | None, with_ratio: bool = True
) -> list[str]:
    return [label, fmt(a), fmt(b), ratio(a, b) if with_ratio else ""]


def report(sc: Json, cw: Json) -> tuple[str, Json]:
    e_sc, e_cw = sc["edit_to_live"], cw["edit_to_live"]
    s_sc, s_cw = e_sc["container_start"], e_cw["container_start"]
    t_sc, t_cw = sc["touch"], cw["touch"]
    b_sc, b_cw = sc["burst"], cw["burst"]
    n = b_sc["files_per_service"]
    rows = [
        row(f"edit-to-live median (s, {e_sc['edits']} edits)", e_sc["median"], e_cw["median"]),
        row("edit-to-live min (s)", e_sc["min"], e_cw["min"]),
        row("edit-to-live max (s)", e_sc["max"], e_cw["max"]),
        row("edits not live within 60 s", e_sc["timeouts"], e_cw["timeouts"], False),
        row("edit-to-new-container-start median (s)", s_sc["median"], s_cw["median"]),
        row("builds after touching every context file", t_sc["builds"], t_cw["builds"]),
        row("  containers recreated (docker events)", t_sc["recreates"], t_cw["recreates"], False),
    ]
    for svc in b_sc["builds"]:
        rows.append(
            row(
                f"burst of {n} files/service: builds of {svc}",
                b_sc["builds"][svc],
                b_cw["builds"].get(svc),
            )
        )
    for svc in b_sc["builds"]:
        rows.append(
            row(
                f"  containers recreated, {svc} (docker events)",
                b_sc["recreates"][svc],
                b_cw["recreates"].get(svc),
                False,
            )
        )
    for svc in b_sc["builds"]:
        rows.append(
            row(
                f"  burst-to-live of {svc} (s)",
                b_sc["to_live_seconds"][svc],
                b_cw["to_live_seconds"].get(svc),
            )
        )

    limit = 0.6 * e_cw["median"]
    targets = {
        "edit_to_live_median_le_0.6x_compose_watch": e_sc["median"] <= limit,
        "touch_builds_zero": t_sc["builds"] == 0,
        "burst_one_build_per_service": all(c == 1 for c in b_sc["builds"].values()),
    }
    lines = [
        table(["metric", SIDECAR, WATCH, "ratio sidecar/watch"], rows),
        "",
        "targets (sidecar):",
        f"  edit-to-live median <= 0.6 x compose watch: {fmt(e_sc['median'])} s vs limit "
        f"{fmt(limit)} s -> {verdict(targets['edit_to_live_median_le_0.6x_compose_watch'])}",
        f"    (same target on edit-to-new-container-start: {fmt(s_sc['median'])} s vs limit "
        f"{fmt(0.6 * s_cw['median'])} s, informational)",
        f"  0 builds for touch: got {t_sc['builds']} -> {verdict(targets['touch_builds_zero'])}",
        f"  exactly 1 build per service for the burst: got {b_sc['builds']} -> "
        f"{verdict(targets['burst_one_build_per_service'])}",
    ]
    lines += [
        "",
        "notes:",
        "  - the sidecar watches whole build contexts (no develop section); compose watch has",
        "    develop.watch action: rebuild on each www/ dir",
        f"  - live minus new-container-start (median): sidecar "
        f"{fmt(e_sc['median'] - s_sc['median'])} s, compose watch "
        f"{fmt(e_cw['median'] - s_cw['median'])} s;",
        "    the same for both tools: mostly the neighbour-cache delay that probing during the",
        "    recreate causes (bench/README.md, 'Caveat')",
    ]
    if e_sc.get("phases_median"):
        order = ("write_to_build_started", "build", "deploy")
        phases = e_sc["phases_median"]
        parts = ", ".join(f"{k} {fmt(phases[k])} s" for k in order if k in phases)
        lines += [f"  - sidecar edit phases (median, from its events stream): {parts}"]
    return "\n".join(lines), targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.rebuild",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--edits", type=int, default=7, help="edits per tool (>= 5)")
    parser.add_argument("--burst", type=int, default=300, help="new files per service")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    parser.add_argument("--dir", metavar="DIR", help="where to create the fixtures (tmp)")
    parser.add_argument(
        "--alone",
        action="store_true",
        help="edit fixture without the neighbour service (measures the ARP-retry artefact too)",
    )
    args = parser.parse_args(argv)
    if args.edits < 5 or args.burst < 1:
        parser.error("--edits must be >= 5 and --burst >= 1")

    logs = results_dir("rebuild")
    base = Path(tempfile.mkdtemp(prefix="bench-rebuild-", dir=args.dir))
    redis_server = RedisServer(base)
    env = environment()
    print(f"logs: {logs}\nfixtures: {base}", flush=True)
    try:
        redis_server.start()
        sc = bench_tool(SIDECAR, base, logs, redis_server.url, args.edits, args.burst, args.alone)
        cw = bench_tool(WATCH, base, logs, redis_server.url, args.edits, args.burst, args.alone)
    finally:
        redis_server.stop()
        shutil.rmtree(base, ignore_errors=True)

    text, targets = report(sc, cw)
    print("\n" + text)
    write_json(
        args.json,
        {
            "benchmark": "rebuild",
            "fixture": "web alone" if args.alone else "web + never-edited neighbour db",
            "environment": env,
            "logs": str(logs),
            "sidecar": sc,
            "compose_watch": cw,
            "targets": targets,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
