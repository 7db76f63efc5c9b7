"""What the benchmarks share beyond the test kit (testkit/): statistics, tables, verdicts and
JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from testkit.redis_server import RedisServer
from testkit.traefik import Traefik
from testkit.wait import run

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

Json = dict[str, Any]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0 or a != a or b != b:  # a != a: NaN
        return "n/a"
    return f"{a / b:.2f}x"


def fmt(value: float | int | str | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:.3f}{unit}"
    return f"{value}{unit}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "-+-".join("-" * w for w in widths)

    def render(r: Sequence[str]) -> str:
        return " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    return "\n".join([render(headers), line, *(render(r) for r in rows)])


def environment() -> Json:
    def out(*cmd: str) -> str:
        try:
            return run(*cmd, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "docker": out("docker", "version", "--format", "{{.Server.Version}}"),
        "compose": out("docker", "compose", "version", "--short"),
        "loadavg_at_start": os.getloadavg(),
    }


def write_json(path: str | None, data: Json) -> None:
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    print(f"\nfigures written to {target}")


def results_dir(name: str) -> Path:
    """A fresh directory for logs of this run under bench/results/ (git-ignored)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def code_state() -> Json:
    """The sidecar code a benchmark measured: the commit, and any uncommitted change under
    sidecar/ (a figure from a dirty tree says so)."""
    status = run("git", "status", "--porcelain", "sidecar", cwd=REPO).stdout
    return {
        "commit": run("git", "rev-parse", "--short", "HEAD", cwd=REPO).stdout.strip(),
        "uncommitted": [line for line in status.split("\n") if line.strip()],
    }


def alone_from(samples: Sequence[Sequence[Any]], content: str) -> float | None:
    """The send time from which every request of `samples` (`[sent, status, body, ...]`, by
    send time) was answered 200 with `content`; None when the last one was not."""
    last_other = max(
        (float(s[0]) for s in samples if not (s[1] == 200 and s[2] == content)), default=None
    )
    return next(
        (float(s[0]) for s in samples if last_other is None or float(s[0]) > last_other), None
    )


def begin(name: str, parent: str | None) -> tuple[Path, Path, Json]:
    """A run's log directory under bench/results/, a fresh fixtures directory (under `parent`,
    else the system's temporary one), both printed with the code measured; and the head of
    its result: the benchmark's name, the environment, the code, the logs."""
    logs = results_dir(name)
    base = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=parent))
    code = code_state()
    print(f"logs: {logs}\nfixtures: {base}\nsidecar code: {code}", flush=True)
    head: Json = {"benchmark": name, "environment": environment(), "code": code}
    return logs, base, head | {"logs": str(logs)}


@contextmanager
def redis_and_traefik(
    base: Path, logs: Path, shared: str, result: Json
) -> Iterator[tuple[RedisServer, Traefik]]:
    """A private redis-server and a Traefik routing from it (its log in `logs`), for the
    daemons of a run; afterwards the keys left on it besides `shared` (deleted) go into
    `result["keys_left"]`, and both are stopped."""
    server = RedisServer(base)
    traefik = Traefik(server.port, logs / "traefik.log")
    try:
        server.start()
        traefik.start()
        yield server, traefik
    finally:
        result["keys_left"] = redis_leftovers(server.url, shared)
        traefik.stop()
        server.stop()


def redis_leftovers(url: str, shared: str) -> list[str]:
    """After a benchmark's clean-up, the keys still on its private Redis besides `shared` (a
    stream every sidecar on it writes, e.g. a hub of pushes), which is deleted here; [] when
    the server does not answer."""
    try:
        with redis.Redis.from_url(url, decode_responses=True) as r:
            left = sorted(str(k) for k in r.scan_iter() if k != shared)
            r.delete(shared)
            return left
    except redis.RedisError:
        return []


def warn_leftovers(result: Json, phases: Sequence[str]) -> None:
    """Say what the clean-up left: containers or images of a phase, Redis keys."""
    for phase in phases:
        left = result.get(phase, {}).get("left_after_cleanup") or {}
        if left.get("containers") or left.get("images"):
            print(f"warning: left after the clean-up of {phase}: {left}")
    if result.get("keys_left"):
        print(f"warning: Redis keys left after the clean-up: {result['keys_left'][:10]}")
