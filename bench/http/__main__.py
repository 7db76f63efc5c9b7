"""`python3 -m bench.http`: `GET /v1/status` with 50 services and 500 instances simulated in a
private Redis, served by the daemon's real HTTP server (sidecar.adapters.web), beside the
CLI's `sidecar status --json` (what a user runs otherwise) on the same keys. Loopback only."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from pydantic import SecretStr

from bench.common import Json, environment, median, results_dir, write_json
from bench.http.live import event_to_client, idle_cpu
from sidecar.adapters.metrics import Metrics
from sidecar.adapters.web.server import WebServer
from sidecar.core.keys import Keys
from sidecar.settings import Settings
from testkit.http_api import Api
from testkit.redis_server import RedisServer
from testkit.wait import wait_for

PROJECT = "benchhttp"
SERVICES = 50
INSTANCES = 10  # per service: 500 in all
FILES = 20  # hash-cache entries per service


def populate(r: redis.Redis, keys: Keys) -> None:
    """The keys the daemon writes for a project of this size (shapes as in the README)."""
    now = time.time()
    beat = {
        "pid": 1,
        "host": "bench",
        "started": now,
        "at": now,
        "version": "bench",
        "threads": {"commands": "running", "docker-events": "running", "http": "running"},
    }
    pipe = r.pipeline()
    pipe.set(keys.heartbeat, json.dumps(beat), ex=3600)
    for s in range(SERVICES):
        name = f"svc{s:02d}"
        pipe.sadd(keys.services, name)
        pipe.hset(
            keys.service(name),
            mapping={
                "context": f"/ws/{name}",
                "image": f"{PROJECT}-{name}",
                "served": "1",
                "replicas": str(INSTANCES),
                "last_build_at": f"{now:.3f}",
                "last_build_duration": "0.412",
                "last_build_result": "ok",
                "last_build_reason": "1 files changed",
            },
        )
        pipe.hset(
            keys.hashes(name), mapping={f"{name}/www/f{i}.html": "x" * 16 for i in range(FILES)}
        )
        for i in range(INSTANCES):
            cid = f"{s:02d}{i:02d}".ljust(64, "0")
            url = f"http://10.1.{s}.{i + 2}:8080"
            pipe.hset(
                keys.instances(name),
                cid,
                json.dumps(
                    {
                        "name": f"{PROJECT}-{name}-{i + 1}",
                        "url": url,
                        "state": "serving",
                        "since": f"{now:.3f}",
                    }
                ),
            )
            pipe.rpush(keys.rotation(name), url)
    pipe.execute()


def timed(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.http", description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cli-runs", type=int, default=10)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--kills", type=int, default=7, help="Docker events timed to SSE")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU")
    parser.add_argument("--no-docker", action="store_true", help="the status phase only")
    parser.add_argument(
        "--chromium",
        default="/usr/bin/chromium",
        help="the browser that reads the events in the dashboard ('' for none)",
    )
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="bench-http-"))
    server = RedisServer(base)
    server.start()
    stop = threading.Event()
    try:
        keys = Keys("sidecar", PROJECT)
        r = redis.Redis.from_url(server.url, decode_responses=True)
        populate(r, keys)
        settings = Settings(
            redis_url=SecretStr(server.url),
            project_name=PROJECT,
            workspace=base,
            http_listen="127.0.0.1:0",
            http_token=SecretStr("bench"),
        )
        listen = settings.listen
        assert listen is not None
        web = WebServer(settings, listen, lambda: keys, Metrics())
        thread = threading.Thread(target=web.run, args=(stop,), daemon=True)
        thread.start()
        wait_for(lambda: web.bound is not None, 10, "the HTTP server to listen")
        assert web.bound is not None
        api = Api(web.bound[1], "bench")
        first = api.request("GET", "/v1/status")
        assert first.status == 200, first.body[:200]
        doc = first.json()
        instances = sum(len(s.get("instance_list", [])) for s in doc["services"].values())
        http = timed(lambda: api.request("GET", "/v1/status"), args.requests)
        env = {
            "SIDECAR_REDIS_URL": server.url,
            "SIDECAR_PROJECT_NAME": PROJECT,
            "PATH": "/usr/bin:/bin",
        }
        cli_cmd = [sys.executable, "-m", "sidecar", "status", "--json"]
        cli = timed(
            lambda: subprocess.run(cli_cmd, env=env, cwd=base, capture_output=True, check=True),
            args.cli_runs,
        )
        result: Json = {
            "benchmark": "http-status",
            "environment": environment(),
            "services": len(doc["services"]),
            "instances": instances,
            "bytes": len(first.body),
            "http_median_s": median(http),
            "http_p95_s": sorted(http)[int(0.95 * len(http))],
            "cli_median_s": median(cli),
            "requests": args.requests,
            "cli_runs": args.cli_runs,
        }
        if not args.no_docker:
            logs = results_dir("http")
            print(f"logs: {logs}", flush=True)
            chromium = Path(args.chromium) if args.chromium else None
            result["event_to_client"] = event_to_client(
                base, logs, server.url, args.kills, chromium
            )
            result["idle_cpu"] = idle_cpu(base, logs, server.url, args.idle, chromium)
    finally:
        stop.set()
        web_stop = getattr(locals().get("web"), "interrupt", None)
        if web_stop:
            web_stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"GET /v1/status, {result['services']} services / {result['instances']} instances, "
        f"{result['bytes']} bytes: median {result['http_median_s'] * 1000:.1f} ms, "
        f"p95 {result['http_p95_s'] * 1000:.1f} ms ({args.requests} requests)"
    )
    print(
        f"sidecar status --json (a process each): median {result['cli_median_s'] * 1000:.0f} ms"
        f" ({args.cli_runs} runs); ratio http/cli "
        f"{result['http_median_s'] / result['cli_median_s']:.3f}x"
    )
    live = result.get("event_to_client")
    if live:
        print(f"docker kill -> instance-left ({live['kills']} kills, target < 100 ms median):")
        for name, label in (
            ("to_redis", "in Redis (the stream entry)"),
            ("sse_client", "read by an SSE client"),
            ("browser", "read by the dashboard in chromium"),
        ):
            if name in live:
                lag = live[name]
                verdict = (
                    "" if name == "to_redis" else ("  PASS" if lag["median_s"] < 0.1 else "  MISS")
                )
                print(
                    f"  {label:36} median {lag['median_s'] * 1000:6.1f} ms, "
                    f"max {lag['max_s'] * 1000:6.1f} ms{verdict}"
                )
    idle = result.get("idle_cpu")
    if idle:
        a = idle["without_server"]["share"]
        b = idle["with_server_2_dashboards"]["share"]
        print(
            f"idle CPU over {idle['seconds']:g} s ({idle['dashboards']}): "
            f"{a * 100:.2f}% without the server, "
            f"{b * 100:.2f}% with it and 2 dashboards: +{(b - a) * 100:.2f} points "
            f"(target < 5: {'PASS' if b - a < 0.05 else 'MISS'})"
        )
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
