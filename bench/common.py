"""What the benchmarks share beyond the test kit (testkit/): statistics, tables, verdicts and
JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
