"""Scale-out: the sidecar's `scale web 10` (from 1) until all 10 instances are healthy and in
the rotation, against `docker compose up -d --scale web=10 --no-recreate` until all 10
answer, on the same fixture (busybox httpd FROM scratch, init: true, not published).

    python3 -m bench.scale [--trials 3] [--replicas 10] [--json PATH]

Each trial starts from one running instance. Both sides are timed from the moment the
command is issued: for the sidecar, an XADD to its command stream (what `sidecar scale`
does) until the rotation list in Redis holds N URLs; for compose, the `docker compose up`
invocation until every one of the N containers answers HTTP on its address. The sidecar
health-probes each new instance before it joins; compose's figure includes the same HTTP
check done from outside. Trials alternate between the two sides.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.common import (
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
from testkit.wait import wait_for
from testkit.workspace import IMAGE_LABEL, Workspace, remove_images

Json = dict[str, Any]


def fixture(base: Path, name: str, served: bool) -> Workspace:
    ws = Workspace(base / name, name)
    extra: Json = {"build": {"context": "./web", "labels": {IMAGE_LABEL: name}}}
    if served:
        extra["x-sidecar"] = {
            "port": 8080,
            "replicas": 1,
            "max_replicas": 50,
            "rollout": {"proxy_settle": 0},
        }
    ws.add_service("web", None, "v0", False, **extra)
    ws.write_compose()
    return ws


def answers(ip: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=0.25) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def addresses(ws: Workspace) -> list[str]:
    out = []
    for cid in ws.containers("web"):
        nets = ws.inspect(cid).get("NetworkSettings", {}).get("Networks", {})
        out += [n["IPAddress"] for n in nets.values() if n.get("IPAddress")]
    return out


def compose_trial(ws: Workspace, n: int) -> float:
    ws.compose("up", "-d", "--no-deps", "--scale", "web=1", "web")
    wait_for(lambda: len(ws.containers("web")) == 1, 30, "one instance")
    t0 = time.monotonic()
    ws.compose("up", "-d", "--no-deps", "--no-recreate", "--scale", f"web={n}", "web")
    wait_for(
        lambda: len(ips := addresses(ws)) == n and all(answers(ip) for ip in ips),
        120,
        f"{n} instances answering",
        0.01,
    )
    return time.monotonic() - t0


def sidecar_trial(sc: Sidecar, n: int) -> float:
    key = f"sidecar:{sc.ws.name}:rotation:web"
    stream = f"sidecar:{sc.ws.name}:commands"
    sc.r.xadd(
        stream, {"action": "scale", "service": "web", "replicas": "1", "id": uuid.uuid4().hex}
    )
    wait_for(lambda: sc.r.llen(key) == 1 and len(sc.ws.containers("web")) == 1, 60, "one instance")
    sc.settle(quiet=0.5)
    t0 = time.monotonic()
    sc.r.xadd(
        stream, {"action": "scale", "service": "web", "replicas": str(n), "id": uuid.uuid4().hex}
    )
    wait_for(lambda: sc.r.llen(key) == n, 120, f"{n} URLs in the rotation", 0.005)
    took = time.monotonic() - t0
    sc.settle(quiet=0.5)
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    logs = results_dir("scale")
    base = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    redis_server = RedisServer(base)
    env = environment()
    tag = uuid.uuid4().hex[:6]
    ws_c = fixture(base, f"benchscalecw{tag}", served=False)
    ws_s = fixture(base, f"benchscalesc{tag}", served=True)
    compose_times: list[float] = []
    sidecar_times: list[float] = []
    sc: Sidecar | None = None
    try:
        redis_server.start()
        ws_c.compose("build")
        ws_c.compose("up", "-d")
        sc = Sidecar(ws_s, redis_server.url, logs / "sidecar.log")
        sc.start()
        for i in range(args.trials):
            compose_times.append(compose_trial(ws_c, args.replicas))
            sidecar_times.append(sidecar_trial(sc, args.replicas))
            print(
                f"trial {i + 1}/{args.trials}: compose {compose_times[-1]:.3f} s, "
                f"sidecar {sidecar_times[-1]:.3f} s",
                flush=True,
            )
    finally:
        if sc is not None:
            sc.stop()
            sc.cleanup_keys()
        for ws in (ws_c, ws_s):
            ws.cleanup()
            remove_images(ws.name)
        redis_server.stop()
        shutil.rmtree(base, ignore_errors=True)
    s_med, c_med = median(sidecar_times), median(compose_times)
    print()
    print(
        table(
            ["metric", "sidecar", "compose --scale", "ratio"],
            [
                [
                    f"1 -> {args.replicas} (s, median of {args.trials})",
                    fmt(s_med),
                    fmt(c_med),
                    ratio(s_med, c_med),
                ],
                [
                    "min (s)",
                    fmt(min(sidecar_times)),
                    fmt(min(compose_times)),
                    ratio(min(sidecar_times), min(compose_times)),
                ],
                [
                    "max (s)",
                    fmt(max(sidecar_times)),
                    fmt(max(compose_times)),
                    ratio(max(sidecar_times), max(compose_times)),
                ],
            ],
        )
    )
    ok = s_med <= 1.2 * c_med
    print(
        f"\ntarget: sidecar <= 1.2 x compose: {s_med:.3f} s vs limit {1.2 * c_med:.3f} s "
        f"-> {verdict(ok)}"
    )
    write_json(
        args.json,
        {
            "benchmark": "scale",
            "environment": env,
            "replicas": args.replicas,
            "sidecar": sidecar_times,
            "compose": compose_times,
            "sidecar_median": s_med,
            "compose_median": c_med,
            "target_met": ok,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
