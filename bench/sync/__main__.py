"""`python3 -m bench.sync`: flags, the phases for both tools one after the other, the
report and the JSON."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bench.sync
from bench.common import Json, code_state, environment, results_dir, write_json
from bench.sync import record
from bench.sync.report import report
from bench.sync.tools import SIDECAR, WATCH
from testkit.docker import dockerd_identity
from testkit.redis_server import RedisServer

GROUPS = ("sync", "restart", "rebuild")  # fixtures: phases 1-4, phase 5, phase 6


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.sync",
        description=bench.sync.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--edits", type=int, default=5, help="edits per tool and phase (>= 5)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    parser.add_argument("--dir", metavar="DIR", help="where to create the fixtures (tmp)")
    parser.add_argument(
        "--only",
        default=",".join(GROUPS),
        metavar="G[,G...]",
        help=f"fixtures to run, of {','.join(GROUPS)} (phases 1-4, 5, 6); default all",
    )
    args = parser.parse_args(argv)
    args.groups = [g for g in args.only.split(",") if g]
    if args.edits < 5:
        parser.error("--edits must be >= 5")
    if not args.groups or set(args.groups) - set(GROUPS):
        parser.error(f"--only takes some of {','.join(GROUPS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logs = results_dir("sync")
    base = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=args.dir))
    redis_server = RedisServer(base)
    env = environment()
    code = code_state()
    print(f"logs: {logs}\nfixtures: {base}\nsidecar code: {code}", flush=True)
    results: dict[str, Json] = {SIDECAR: {}, WATCH: {}}
    phases: dict[str, Callable[[str], Json]] = {
        "sync": lambda kind: record.bench_sync(kind, base, logs, redis_server.url, args.edits),
        "restart": lambda kind: record.bench_restart(kind, base, logs, redis_server, args.edits),
        "rebuild": lambda kind: record.bench_rebuild(
            kind, base, logs, redis_server.url, args.edits
        ),
    }
    aborted = ""
    t0 = time.monotonic()
    dockerd = dockerd_identity()
    try:
        redis_server.start()
        for group in args.groups:
            for kind in (SIDECAR, WATCH):
                results[kind].update(phases[group](kind))
                if dockerd_identity() != dockerd:
                    raise RuntimeError(
                        f"dockerd restarted during the {group} phases of {kind}: the figures "
                        "are invalid; run again when nothing else restarts dockerd"
                    )
    except (RuntimeError, AssertionError) as exc:
        aborted = str(exc)
        print(f"\nbenchmark aborted (everything it started is cleaned up): {exc}", flush=True)
    finally:
        redis_server.stop()
        shutil.rmtree(base, ignore_errors=True)

    text, found = report(results[SIDECAR], results[WATCH], record.RATE)
    print("\n" + text)
    print(f"\ntotal time {time.monotonic() - t0:.0f} s")
    if aborted:
        print(f"ABORTED (the report holds the phases both tools completed): {aborted[:2000]}")
    write_json(
        args.json,
        {
            "benchmark": "sync",
            "environment": env,
            "sidecar_code": code,
            "logs": str(logs),
            "settings": {
                "edits": args.edits,
                "groups": args.groups,
                "rate": record.RATE,
                "request_timeout_s": record.REQUEST_TIMEOUT,
                "delete_wait_s": record.DELETE_WAIT,
                "bulk_wait_s": record.BULK_WAIT,
            },
            "sidecar": results[SIDECAR],
            "compose_watch": results[WATCH],
            "targets": {t.name: t.ok for t in found},
            "aborted": aborted,
            "seconds": time.monotonic() - t0,
        },
    )
    return 2 if aborted else 0


if __name__ == "__main__":
    sys.exit(main())
