"""`python3 -m bench.git`: flags, the webhook phase then the poll phase (one daemon each, one
Traefik and one private Redis for both), the report and the JSON."""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import redis

import bench.git
from bench.common import Json, code_state, environment, results_dir, write_json
from bench.git.analyse import push_figures, summarise, targets
from bench.git.record import POLL, WEBHOOK, Phase
from bench.git.report import report
from testkit.redis_server import RedisServer
from testkit.traefik import Traefik

HUB = "sidecar:hub:pushes"  # shared by every sidecar on the Redis: the pushes' webhooks


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.git",
        description=bench.git.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5, help="pushes per phase (default 5)")
    parser.add_argument(
        "--poll-s", type=float, default=2.0, help="git_poll_s of the poll phase (default 2)"
    )
    parser.add_argument("--no-poll", action="store_true", help="the webhook phase only")
    parser.add_argument("--seed", type=int, default=13, help="of the pushes' poll-phase jitter")
    parser.add_argument("--dir", metavar="DIR", help="where to create the fixtures (tmp)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if args.poll_s < 1:
        parser.error("--poll-s must be >= 1 (the daemon's minimum)")
    return args


def run_phase(phase: Phase, runs: int, rng: random.Random) -> tuple[Json, list[Json]]:
    out: Json = {"project": phase.project, "settings": phase.settings}
    records: list[Json] = []
    try:
        out["start_seconds"] = phase.start()
        for n in range(1, runs + 1):
            record = phase.one_push(n, rng)
            records.append(record)
            figures = push_figures(record)
            print(
                f"  {phase.mode} {figures['content']}: live after "
                f"{figures['to_live'] or float('nan'):.3f} s, {figures['failed']} failed",
                flush=True,
            )
        out["other_builds"] = phase.other_builds()
    finally:
        out["left_after_cleanup"] = phase.stop()
    out["pushes"] = [push_figures(r) for r in records]
    out["summary"] = summarise(out["pushes"])
    return out, records


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logs = results_dir("git")
    base = Path(tempfile.mkdtemp(prefix="bench-git-", dir=args.dir))
    code = code_state()
    print(f"logs: {logs}\nfixtures: {base}\nsidecar code: {code}", flush=True)
    result: Json = {
        "benchmark": "git",
        "environment": environment(),
        "code": code,
        "runs": args.runs,
        "poll_s": None if args.no_poll else args.poll_s,
        "logs": str(logs),
    }
    records: dict[str, list[Json]] = {}
    rng = random.Random(args.seed)
    server = RedisServer(base)
    traefik = Traefik(server.port, logs / "traefik.log")
    t0 = time.monotonic()
    try:
        server.start()
        traefik.start()
        for mode in (WEBHOOK,) if args.no_poll else (WEBHOOK, POLL):
            print(f"{mode}:", flush=True)
            phase = Phase(mode, base, logs, server.url, traefik, args.poll_s)
            result[mode], records[mode] = run_phase(phase, args.runs, rng)
    finally:
        try:
            with redis.Redis.from_url(server.url, decode_responses=True) as r:
                # after both phases' clean-up only the shared hub should be left
                result["keys_left"] = sorted(str(k) for k in r.scan_iter() if k != HUB)
                r.delete(HUB)
        except redis.RedisError:
            pass
        traefik.stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    result["seconds"] = time.monotonic() - t0
    other = sum(int(result[m]["other_builds"]) for m in (WEBHOOK, POLL) if m in result)
    result["targets"] = targets(
        result[WEBHOOK]["summary"], result.get(POLL, {}).get("summary"), other
    )
    report(result)
    for mode in (WEBHOOK, POLL):
        left = result.get(mode, {}).get("left_after_cleanup") or {}
        if left.get("containers") or left.get("images"):
            print(f"warning: left after the clean-up of {mode}: {left}")
    if result.get("keys_left"):
        print(f"warning: Redis keys left after the clean-up: {result['keys_left'][:10]}")
    print(f"\n{result['seconds']:.0f} s in all")
    result["records"] = records
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
