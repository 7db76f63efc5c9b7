"""`python3 -m bench.zero_downtime`: flags, the two tools one after the other, the JSON."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import bench.zero_downtime
from bench.common import Json, environment, results_dir, write_json
from bench.zero_downtime.record import (
    HOST,
    RATE,
    REPLICAS,
    REQUEST_TIMEOUT,
    SIDECAR,
    SIDECAR_QUIET,
    TAIL,
    WATCH,
    WATCH_QUIET,
    bench_tool,
)
from bench.zero_downtime.report import report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.zero_downtime",
        description=bench.zero_downtime.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--redeploys", type=int, default=10, help="edits per tool (>= 10)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    parser.add_argument(
        "--record", metavar="PATH", help="write every redeploy window as recorded here"
    )
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
    records: list[Json] = []
    try:
        sc = bench_tool(SIDECAR, base, logs, args.redeploys, args.watch_scale, records)
        cw = bench_tool(WATCH, base, logs, args.redeploys, args.watch_scale, records)
    except RuntimeError as exc:
        print(f"\nbenchmark aborted (everything it started is cleaned up): {exc}", flush=True)
        return 2
    finally:
        shutil.rmtree(base, ignore_errors=True)

    if args.record:
        Path(args.record).write_text(json.dumps(records) + "\n")
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
