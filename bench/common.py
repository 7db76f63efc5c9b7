"""Helpers shared by the benchmarks: a fast HTTP probe, docker clean-up by image label,
counting container creations from `docker events`, tables, JSON output."""

from __future__ import annotations

import http.client
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sidecar.adapters.compose import kill_group

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# Every image a benchmark builds carries this label (compose `build.labels`), so the previous
# images that rebuilds leave dangling are found and removed too, and nothing else is touched.
IMAGE_LABEL = "compose-sidecar.bench"

Json = dict[str, Any]


def fetch(port: int, path: str = "/", timeout: float = 0.25) -> str | None:
    """Body of GET http://127.0.0.1:<port><path> (stripped), None on any failure."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        if resp.status != 200:
            return None
        return resp.read().decode(errors="replace").strip()
    except Exception:
        return None
    finally:
        conn.close()


def serves(port: int, expected: str, path: str = "/") -> Callable[[], bool]:
    """A check for `poll`: GET `path` returns exactly `expected`."""
    return lambda: fetch(port, path) == expected


def poll(check: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Call `check` every `interval` seconds until true (True) or `timeout` passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def run(
    *cmd: str, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), capture_output=True, text=True, check=False, timeout=timeout, cwd=cwd
    )


def remove_images(project: str) -> int:
    """Remove every image built for `project` (tagged or left dangling by a rebuild)."""
    ids = set(
        run("docker", "images", "-aq", "--filter", f"label={IMAGE_LABEL}={project}").stdout.split()
    )
    ids |= set(run("docker", "images", "-q", "--filter", f"reference={project}-*").stdout.split())
    if ids:
        run("docker", "rmi", "-f", *sorted(ids))
    return len(ids)


def container_events(
    project: str, since: float, until: float, action: str
) -> list[tuple[str, float]]:
    """(service, unix time) of each container `action` (create, start...) of `project` that
    dockerd reported between two unix times, oldest first (`docker events`, bounded)."""
    proc = run(
        "docker",
        "events",
        "--since",
        f"{since:.3f}",
        "--until",
        f"{min(until, time.time()):.3f}",
        "--filter",
        "type=container",
        "--filter",
        f"event={action}",
        "--filter",
        f"label=com.docker.compose.project={project}",
        "--format",
        "{{json .}}",
        timeout=30,
    )
    found: list[tuple[str, float]] = []
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        attrs = event.get("Actor", {}).get("Attributes", {})
        svc = str(attrs.get("com.docker.compose.service", "?"))
        found.append((svc, int(event.get("timeNano", 0)) / 1e9))
    return sorted(found, key=lambda e: e[1])


def container_creates(project: str, since: float, until: float) -> dict[str, int]:
    """service -> containers created for `project` between two unix times."""
    counts: dict[str, int] = {}
    for svc, _ in container_events(project, since, until, "create"):
        counts[svc] = counts.get(svc, 0) + 1
    return counts


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


class WatchProcess:
    """`docker compose up -d`, then `docker compose watch` in its own process group, its
    output going to `log`: the compose-watch side of the benchmarks that compare with it."""

    def __init__(self, ws: Any, log: Path, quiet: float, timeout: float) -> None:
        self.ws = ws
        self.log = log
        self.quiet = quiet  # settled: nothing printed for this long
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        up = self.ws.compose("up", "-d", check=False)
        if up.returncode != 0:
            raise RuntimeError(f"docker compose up failed:\n{up.stderr[-2000:]}")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    "docker",
                    "compose",
                    "-p",
                    self.ws.name,
                    "--project-directory",
                    str(self.ws.root),
                    "watch",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.ws.root,
                start_new_session=True,
            )
        if not poll(lambda: "Watch enabled" in self.text() or self.died(), self.timeout, 0.05):
            raise RuntimeError(f"compose watch did not start:\n{self.tail()}")
        if self.died():
            raise RuntimeError(f"compose watch exited:\n{self.tail()}")
        self.settle()

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:]) or "(no log)"

    def settle(self) -> None:
        """Quiet: compose watch printed nothing for `quiet` seconds."""
        deadline = time.monotonic() + self.timeout
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if self.died():
                raise RuntimeError(f"compose watch exited:\n{self.tail()}")
            now_size = self.size()
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= self.quiet:
                return
            time.sleep(0.05)
        raise RuntimeError(f"compose watch did not settle:\n{self.tail()}")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        kill_group(proc, term_wait=10.0, kill_wait=10.0)
