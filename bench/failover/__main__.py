"""`python3 -m bench.failover`: flags, set-up and clean-up of the real parts, the phases (one
kill and one stop phase per retry setting), the JSON output."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import bench.failover
from bench.common import REPO, environment, results_dir, write_json
from bench.failover.analyse import PATH_A, PATH_B, Json, stream_figures, summary
from bench.failover.fixture import REPLICAS, SERVICE, SIGTERM_GRACE, make_workspace, set_retry
from bench.failover.record import (
    CLEAN_SECONDS,
    PROXY_QUIET,
    STABLE_TIMEOUT,
    Bench,
    phase,
)
from bench.failover.report import PATH_LABELS, mode_key, report, streams_lines
from testkit.load import OpenLoad
from testkit.recorders import DockerEventLog, ListWatch
from testkit.redis_server import RedisServer
from testkit.sidecar import Sidecar
from testkit.traefik import DockerTraefik, Traefik
from testkit.wait import poll, run
from testkit.workspace import IMAGE_LABEL, remove_images

HOST = "app.bench"
REQUEST_TIMEOUT = 1.0
START_TIMEOUT = 180.0
# The sidecar runs with its defaults: kills and stops by hand are not crashes (they used to
# be, which needed crash_window_s=1 here); `--sidecar-setting NAME=VALUE` overrides any.
SIDECAR_DEFAULTS: dict[str, str] = {}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.failover",
        description=bench.failover.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=10, help="trials per action (>= 1)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s per stream")
    parser.add_argument("--seed", type=int, default=1, help="victim choice")
    parser.add_argument(
        "--retry",
        default="2,0",
        metavar="N[,N...]",
        help="the sidecar's retry.attempts for each run of the trials, in order (default 2,0: "
        "its default, then no retry middleware)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    parser.add_argument(
        "--record", metavar="PATH", help="write every trial as recorded (plain data) here"
    )
    parser.add_argument("--dir", metavar="DIR", help="where to create the fixture (tmp)")
    parser.add_argument(
        "--serve-during-shutdown",
        action="store_true",
        help="fixture variant: keep answering for the whole shutdown after SIGTERM (a graceful "
        "app); shows whether a stopping instance is put back into the rotation. The targets "
        "are defined for the default fixture",
    )
    parser.add_argument(
        "--traefik-log-level", default="INFO", help="both proxies' log level (DEBUG to debug)"
    )
    parser.add_argument(
        "--sidecar-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="sidecar setting SIDECAR_<NAME>, repeatable (default: none)",
    )
    args = parser.parse_args(argv)
    try:
        args.modes = [int(m) for m in args.retry.split(",") if m.strip()]
    except ValueError:
        parser.error("--retry takes whole numbers, e.g. 2,0")
    if args.trials < 1 or not 1 <= args.rate <= 200 or not args.modes:
        parser.error("--trials must be >= 1, --rate within 1..200, --retry not empty")
    if any(not 0 <= m <= 10 for m in args.modes):
        parser.error("--retry attempts must be within 0..10")
    return args


def switch_retry(b: Bench, attempts: int) -> str:
    """Edit the compose file and wait until the sidecar republished the routing and Traefik
    (a) applied it: "" when done, else what did not happen."""
    set_retry(b.ws, attempts)
    b.retry_attempts = attempts
    name = f"{b.ws.name}-{SERVICE}"
    key = f"traefik/http/middlewares/{name}/retry/attempts"
    want = str(attempts) if attempts else None
    if not poll(lambda: b.sc.r.get(key) == want, 60, 0.1):
        return f"the sidecar did not publish retry attempts {attempts}"
    expect = [f"{name}@redis"] if attempts else []

    def applied() -> bool:
        return b.proxies[PATH_A].router_middlewares(f"{name}@redis") == expect

    if not poll(applied, 30, 0.2):
        return f"traefik (a) did not apply retry attempts {attempts}"
    return ""


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    settings = dict(SIDECAR_DEFAULTS)
    settings.update(s.split("=", 1) for s in args.sidecar_setting if "=" in s)
    logs = results_dir("failover")
    base = Path(tempfile.mkdtemp(prefix="bench-failover-", dir=args.dir))
    name = f"benchfo{uuid.uuid4().hex[:6]}"
    env = environment()
    code: dict[str, Any] = {
        "commit": run("git", "rev-parse", "--short", "HEAD", cwd=REPO).stdout.strip(),
        # the sidecar runs from this checkout: uncommitted changes are part of what is measured
        "uncommitted": run("git", "status", "--porcelain", "sidecar", cwd=REPO).stdout.split("\n"),
    }
    code["uncommitted"] = [line for line in code["uncommitted"] if line.strip()]
    print(f"logs: {logs}\nfixture: {base / name}\nproject: {name}", flush=True)
    print(f"sidecar code: {code['commit']}, uncommitted: {code['uncommitted'] or 'none'}")
    redis_server = RedisServer(base)
    ws = make_workspace(base / name, name, args.modes[0], args.serve_during_shutdown)
    sc = Sidecar(ws, redis_server.url, logs / "sidecar.log", **settings)
    events = DockerEventLog()
    level = args.traefik_log_level
    proxies: dict[str, Traefik] = {
        PATH_A: Traefik(
            redis_server.port, logs / "traefik-a.log", level, logs / "traefik-a-access.log"
        ),
        PATH_B: DockerTraefik(name, logs / "traefik-b.log", level, logs / "traefik-b-access.log"),
    }
    services = {PATH_A: f"{name}-{SERVICE}@redis", PATH_B: f"{name}-{SERVICE}@docker"}
    watch: ListWatch | None = None
    b: Bench | None = None
    results: dict[str, Json] = {}
    records: list[Json] = []
    aborted = ""
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    try:
        redis_server.start()
        events.start()
        sc.start()  # waits for `ready`; the image is built and the instances rolled out
        watch = ListWatch(redis_server.url, f"sidecar:{name}:rotation:{SERVICE}")
        watch.start()
        for proxy in proxies.values():
            proxy.start()
        b = Bench(ws, sc, events, watch, proxies, services, args.modes[0])
        max_seconds = 120 + len(args.modes) * args.trials * 2 * (STABLE_TIMEOUT + 10)
        b.streams = {
            k: OpenLoad(p, HOST, args.rate, max_seconds, REQUEST_TIMEOUT)
            for k, p in proxies.items()
        }
        for stream in b.streams.values():
            stream.start()
        ok, why = b.wait_stable(START_TIMEOUT)
        if not ok:
            raise RuntimeError(f"the fixture never became stable: {why}\n{sc.log_tail()}")
        print(f"stable after {time.monotonic() - t0:.1f} s; 3 instances on both paths", flush=True)
        for i, attempts in enumerate(args.modes):
            if i:
                aborted = switch_retry(b, attempts)
                if aborted:
                    break
            mode = results.setdefault(mode_key(attempts), {})
            for action in ("kill", "stop"):
                trials, aborted = phase(b, action, args.trials, rng, records)
                mode[action] = {"trials": trials, "summary": summary(trials)}
                if aborted:
                    break
            if aborted:
                print(f"  ABORTED: {aborted}", flush=True)
                break
    finally:
        if b is not None:
            for stream in b.streams.values():
                stream.stop()
        for proxy in proxies.values():
            proxy.stop()
        try:
            sc.stop()
        except AssertionError as exc:
            print(f"sidecar stop: {exc}", file=sys.stderr)
        if watch is not None:
            watch.stop()
        events.stop()
        images = run("docker", "images", "-aq", "--filter", f"label={IMAGE_LABEL}={name}").stdout
        ws.cleanup()
        remove_images(name)
        sc.cleanup_keys()
        redis_server.stop()
        shutil.rmtree(base, ignore_errors=True)
        left = run("docker", "images", "-aq", "--filter", f"label={IMAGE_LABEL}={name}").stdout
        print(
            f"\ncleaned up: containers, network, {len(set(images.split()))} images "
            f"({len(left.split())} left), redis, proxies, sidecar",
            flush=True,
        )

    streams_json: dict[str, Json] = {}
    if b is not None:
        for key, stream in b.streams.items():
            requests = [[r.sent, r.done, r.status, r.body] for r in stream.snapshot()]
            streams_json[key] = stream_figures(requests, stream.skipped)
    text, targets = report(results, args.modes, args.trials)
    print("\n" + text)
    print("\n".join(streams_lines(streams_json)))
    if aborted:
        print(f"\nABORTED: {aborted}")
    if args.record:
        Path(args.record).write_text(json.dumps(records) + "\n")
        print(f"\n{len(records)} recorded trials written to {args.record}")
    write_json(
        args.json,
        {
            "benchmark": "failover",
            "environment": env,
            "sidecar_code": code,
            "logs": str(logs),
            "project": name,
            "settings": {
                "trials": args.trials,
                "rate_per_stream": args.rate,
                "request_timeout_s": REQUEST_TIMEOUT,
                "clean_seconds": CLEAN_SECONDS,
                "proxy_quiet_s": PROXY_QUIET,
                "replicas": REPLICAS,
                "sigterm_grace_s": SIGTERM_GRACE,
                "serve_during_shutdown": args.serve_during_shutdown,
                "seed": args.seed,
                "retry_attempts_per_run": args.modes,
                "sidecar_settings": settings,
            },
            "paths": PATH_LABELS,
            "results": results,
            "streams_whole_run": streams_json,
            "aborted": aborted,
            "targets": targets,
            "seconds": time.monotonic() - t0,
        },
    )
    return 1 if aborted else 0


if __name__ == "__main__":
    sys.exit(main())
