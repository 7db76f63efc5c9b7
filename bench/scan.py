"""Start-up scan benchmark: how long the sidecar takes to be `ready` on a large workspace,
how much memory it needs, and whether it keeps inotify watches out of ignored directories.

The workspace (under /tmp, or --dir) has three build contexts holding --files small files
(100 B - 4 KB, ~50 per directory, nested) plus a --node-modules file `node_modules/` tree in
the first context, which the sidecar's default ignore list excludes. No `.dockerignore`:
that would let the sidecar prune the trees and make the test meaningless. The images are
built and the containers started before the sidecar runs, so its start-up `up -d` is a
no-op and "ready" is about the scan.

Baseline, on the same files: `find <contexts> -type f -not -path '*/node_modules/*' -print0
| xargs -0 sha256sum > /dev/null` (once to warm the page cache, then --runs times).

Run from the repository root: `python3 -m bench.scan [--files N] [--runs 3] [--json F]`.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
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
from testkit.redis_server import RedisServer
from testkit.sidecar import Sidecar
from testkit.workspace import IMAGE_LABEL, Workspace, remove_images

CONTEXTS = ("svc0", "svc1", "svc2")
READY_TIMEOUT = 240.0
MEMORY_TARGET_MB = 300.0
READY_TARGET_X = 2.0


# --- the workspace ---------------------------------------------------------------------------
def _write_tree(top: Path, count: int, per_dir: int, rng: random.Random, pool: bytes) -> int:
    """`count` files of 100 B - 4 KB, `per_dir` per directory, three levels deep."""
    exts = (".py", ".js", ".ts", ".json", ".css", ".html", ".txt", ".md")
    current: Path | None = None
    for k in range(count):
        d = k // per_dir
        if k % per_dir == 0:
            current = top / f"p{d // 100:03d}" / f"m{d // 10 % 10}" / f"d{d % 10}"
            current.mkdir(parents=True, exist_ok=True)
        assert current is not None
        size = rng.randint(100, 4096)
        head = f"// {top.name}/{k}\n".encode()
        offset = rng.randrange(0, len(pool) - size)
        body = head + pool[offset : offset + size - len(head)]
        with open(current / f"f{k % per_dir:02d}{exts[k % len(exts)]}", "wb") as f:
            f.write(body)
    return (count + per_dir - 1) // per_dir


def generate(root: Path, name: str, files: int, node_modules: int, per_dir: int) -> Workspace:
    ws = Workspace(root, name)
    for ctx in CONTEXTS:
        # the test kit fixture: busybox httpd FROM scratch, COPY of one small www dir
        ws.add_service(ctx, build={"context": f"./{ctx}", "labels": {IMAGE_LABEL: name}})
    ws.write_compose()
    rng = random.Random(20240601)
    pool = rng.randbytes(1 << 16)
    share = [files // len(CONTEXTS)] * len(CONTEXTS)
    share[0] += files - sum(share)
    for ctx, count in zip(CONTEXTS, share, strict=True):
        _write_tree(root / ctx / "src", count, per_dir, rng, pool)
    _write_tree(root / CONTEXTS[0] / "node_modules", node_modules, per_dir, rng, pool)
    return ws


def kernel_dev(st_dev: int) -> int:
    """st_dev as the kernel prints it in fdinfo `sdev:` (MAJOR << 20 | MINOR)."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def directories(root: Path) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(kept, ignored): (inode, dev) of every directory outside any node_modules tree
    (what the sidecar should watch), and of every directory inside one."""
    kept: set[tuple[int, int]] = set()
    ignored: set[tuple[int, int]] = set()
    for top, _dirs, _files in os.walk(root):
        st = os.stat(top)
        inside = "node_modules" in Path(top).relative_to(root).parts
        (ignored if inside else kept).add((st.st_ino, kernel_dev(st.st_dev)))
    return kept, ignored


# --- probes of the sidecar process -----------------------------------------------------------
def vm_hwm_kb(pid: int) -> int:
    """Peak resident set size (VmHWM) of a process, in kB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def inotify_watches(pid: int) -> list[tuple[int, int]]:
    """(inode, dev) of every inotify watch the process holds (all its inotify fds)."""
    found: list[tuple[int, int]] = []
    base = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(base):
        try:
            with open(os.path.join(base, fd)) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            if not line.startswith("inotify"):
                continue
            fields = dict(p.split(":", 1) for p in line.split()[1:] if ":" in p)
            found.append((int(fields["ino"], 16), int(fields["sdev"], 16)))
    return found


# --- measurements ----------------------------------------------------------------------------
def baseline(contexts: list[Path], runs: int) -> Json:
    cmd = (
        "find "
        + " ".join(shlex.quote(str(c)) for c in contexts)
        + " -type f -not -path '*/node_modules/*' -print0 | xargs -0 sha256sum > /dev/null"
    )
    count_cmd = cmd.replace("-print0 | xargs -0 sha256sum > /dev/null", "| wc -l")
    files = int(
        subprocess.run(
            ["bash", "-c", count_cmd], capture_output=True, text=True, check=True, timeout=600
        ).stdout.strip()
    )
    subprocess.run(["bash", "-c", cmd], check=True, timeout=600)  # warm the page cache
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], check=True, timeout=600)
        times.append(time.monotonic() - t0)
    return {"command": cmd, "files": files, "seconds": times, "median": median(times)}


def sidecar_run(sc: Sidecar, expected: set[tuple[int, int]], ignored: set[tuple[int, int]]) -> Json:
    sc.cleanup_keys()  # every run is a full first scan: no hashes, no events
    wall0 = time.time()
    t0 = time.monotonic()
    sc.start(wait=False)
    assert sc.proc is not None
    pid = sc.proc.pid
    peak = 0
    ready: dict[str, str] | None = None
    while time.monotonic() - t0 < READY_TIMEOUT:
        peak = max(peak, vm_hwm_kb(pid))
        found = sc.events("ready")
        if found:
            ready = found[-1]
            break
        if sc.proc.poll() is not None:
            raise RuntimeError(f"sidecar exited before ready:\n{sc.log_tail()}")
        time.sleep(0.02)
    if ready is None:
        raise RuntimeError(f"sidecar not ready after {READY_TIMEOUT}s:\n{sc.log_tail()}")
    polled = time.monotonic() - t0
    watches = inotify_watches(pid)
    for _ in range(20):  # a second after ready: anything still growing shows in the peak
        peak = max(peak, vm_hwm_kb(pid))
        time.sleep(0.05)
    scanned = sc.events("scanned")[-1]
    sc.stop()
    watched = set(watches)
    scan_s = float(scanned["seconds"])
    scanned_at = float(scanned["at"]) - wall0
    return {
        "ready_seconds": float(ready["at"]) - wall0,
        "ready_seconds_polled": polled,
        "scan_seconds": scan_s,
        "before_scan_seconds": scanned_at - scan_s,
        "after_scan_seconds": float(ready["at"]) - wall0 - scanned_at,
        "files": int(scanned.get("files", "0")),
        "ready_event_watches": int(ready.get("watches", "0")),
        "inotify_watches": len(watches),
        "watches_on_ignored": len(watched & ignored),
        "watches_not_expected": len(watched - expected - ignored),
        "expected_missing": len(expected - watched),
        "peak_rss_mb": peak / 1024,
    }


# --- report ----------------------------------------------------------------------------------
def report(runs: list[Json], base: Json, expected_dirs: int, ignored_dirs: int) -> tuple[str, Json]:
    def med(key: str) -> float:
        return median([float(r[key]) for r in runs])

    ready, scan_s, bl = med("ready_seconds"), med("scan_seconds"), base["median"]
    peak = max(float(r["peak_rss_mb"]) for r in runs)
    watches = max(int(r["inotify_watches"]) for r in runs)
    on_ignored = max(int(r["watches_on_ignored"]) for r in runs)
    rows = [
        ["time to ready (s, median)", fmt(ready), fmt(bl), ratio(ready, bl)],
        ["  scan+hash+store (`scanned` seconds)", fmt(scan_s), fmt(bl), ratio(scan_s, bl)],
        ["  process start -> scan start (s)", fmt(med("before_scan_seconds")), "", ""],
        ["  scan end -> ready (up -d, watches) (s)", fmt(med("after_scan_seconds")), "", ""],
        ["files hashed", fmt(runs[0]["files"]), fmt(base["files"]), ""],
        ["peak RSS (MB, max of runs; target < 300)", fmt(peak), "", ""],
        ["inotify watches held (fdinfo) / dirs to watch", fmt(watches), fmt(expected_dirs), ""],
        ["  `ready` event watches", fmt(runs[0]["ready_event_watches"]), "", ""],
        ["  watches on node_modules dirs", fmt(on_ignored), f"0 of {ignored_dirs}", ""],
        [
            "  watched dirs missing / unexpected",
            f"{max(int(r['expected_missing']) for r in runs)} / "
            f"{max(int(r['watches_not_expected']) for r in runs)}",
            "",
            "",
        ],
    ]
    targets = {
        "ready_within_2x_baseline": ready <= READY_TARGET_X * bl,
        "peak_memory_under_300mb": peak < MEMORY_TARGET_MB,
        "no_watch_on_ignored_dir": on_ignored == 0,
    }
    lines = [
        table(["metric", "sidecar", "baseline find+sha256sum", "ratio"], rows),
        "",
        "targets:",
        f"  ready within {READY_TARGET_X:g}x baseline: {fmt(ready)} s vs limit "
        f"{fmt(READY_TARGET_X * bl)} s -> {verdict(targets['ready_within_2x_baseline'])}",
        f"  peak memory under {MEMORY_TARGET_MB:g} MB: {fmt(peak)} MB -> "
        f"{verdict(targets['peak_memory_under_300mb'])}",
        f"  no watch on the ignored directory: {on_ignored} -> "
        f"{verdict(targets['no_watch_on_ignored_dir'])}",
    ]
    return "\n".join(lines), targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.scan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--files", type=int, default=100_000, help="files in the 3 contexts")
    parser.add_argument("--node-modules", type=int, default=50_000, help="files in node_modules/")
    parser.add_argument("--per-dir", type=int, default=50, help="files per directory")
    parser.add_argument("--runs", type=int, default=3, help="measured runs of each side")
    parser.add_argument("--dir", metavar="DIR", help="parent of the workspace (default: tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.files < 3 or args.runs < 1 or args.per_dir < 1:
        parser.error("--files >= 3, --runs >= 1 and --per-dir >= 1")

    logs = results_dir("scan")
    parent = Path(tempfile.mkdtemp(prefix="bench-scan-", dir=args.dir))
    name = f"benchscan{uuid.uuid4().hex[:8]}"
    root = parent / name
    env = environment()
    redis_server = RedisServer(logs)
    ws: Workspace | None = None
    sc: Sidecar | None = None
    print(f"logs: {logs}\nworkspace: {root}", flush=True)
    try:
        t0 = time.monotonic()
        ws = generate(root, name, args.files, args.node_modules, args.per_dir)
        generated = time.monotonic() - t0
        expected, ignored = directories(root)
        print(
            f"generated {args.files} + {args.node_modules} files in {generated:.1f}s "
            f"({len(expected)} directories to watch, {len(ignored)} ignored)",
            flush=True,
        )

        t0 = time.monotonic()
        for step in (("build",), ("up", "-d")):
            proc = ws.compose(*step, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"docker compose {step[0]} failed:\n{proc.stderr[-2000:]}")
        prepared = time.monotonic() - t0
        print(f"images built and containers started in {prepared:.1f}s", flush=True)

        base = baseline([root / c for c in CONTEXTS], args.runs)
        print(f"baseline: {', '.join(f'{s:.2f}s' for s in base['seconds'])}", flush=True)

        redis_server.start()
        sc = Sidecar(ws, redis_server.url, logs / "sidecar.log")
        runs = []
        for i in range(args.runs):
            runs.append(sidecar_run(sc, expected, ignored))
            r = runs[-1]
            print(
                f"sidecar run {i + 1}/{args.runs}: ready {r['ready_seconds']:.2f}s "
                f"(scan {r['scan_seconds']:.2f}s), peak RSS {r['peak_rss_mb']:.0f} MB, "
                f"{r['inotify_watches']} watches",
                flush=True,
            )
    finally:
        if sc is not None:
            try:
                sc.stop()
            finally:
                sc.cleanup_keys()
        redis_server.stop()
        if ws is not None:
            ws.cleanup()
        remove_images(name)
        if args.keep:
            print(f"workspace kept: {root}")
        else:
            shutil.rmtree(parent, ignore_errors=True)

    text, targets = report(runs, base, len(expected), len(ignored))
    print("\n" + text)
    write_json(
        args.json,
        {
            "benchmark": "scan",
            "environment": env,
            "logs": str(logs),
            "workspace": {
                "files": args.files,
                "node_modules": args.node_modules,
                "per_dir": args.per_dir,
                "dirs_to_watch": len(expected),
                "ignored_dirs": len(ignored),
                "generate_seconds": generated,
                "build_and_up_seconds": prepared,
            },
            "baseline": base,
            "sidecar_runs": runs,
            "sidecar": {
                "ready_seconds_median": median([r["ready_seconds"] for r in runs]),
                "scan_seconds_median": median([r["scan_seconds"] for r in runs]),
                "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
            },
            "targets": targets,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
