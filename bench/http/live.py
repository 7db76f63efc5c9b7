"""The phases with a real daemon (dockerd, Redis): a Docker event to an SSE client, and the
daemon's idle CPU with and without the HTTP server and two open dashboards."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

from bench.common import Json, median
from testkit.http_api import Api, EventStream
from testkit.sidecar import Sidecar, rotation_state, served
from testkit.wait import free_port, wait_for
from testkit.workspace import Workspace

TOKEN = "bench"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _daemon(base: Path, logs: Path, redis_url: str, http: bool) -> tuple[Workspace, Sidecar, int]:
    ws = Workspace(base / uuid.uuid4().hex[:8], f"benchhttp{uuid.uuid4().hex[:6]}")
    served(ws, "web", replicas=2)
    ws.write_compose()
    port = free_port()
    settings = (
        {"http_listen": f"127.0.0.1:{port}", "http_token": TOKEN} if http else {"http_listen": ""}
    )
    sc = Sidecar(ws, redis_url, logs / f"{ws.name}.log", **settings)
    sc.start()
    wait_for(lambda: len(rotation_state(sc, "web")[0]) == 2, 60, "2 serving")
    sc.settle()
    return ws, sc, port


def _stop(ws: Workspace, sc: Sidecar) -> None:
    try:
        sc.stop()
        sc.cleanup_keys()
    finally:
        ws.cleanup()


def event_to_sse(base: Path, logs: Path, redis_url: str, kills: int) -> Json:
    """`docker kill` of a serving instance, `kills` times: from the Docker event's own time
    (`docker_at` of the `instance-left` event) to an SSE client reading it."""
    ws, sc, port = _daemon(base, logs, redis_url, http=True)
    lags: list[float] = []
    try:
        stream = EventStream(port, headers={"Authorization": f"Bearer {TOKEN}"})
        assert stream.status == 200, stream.status
        for _ in range(kills):
            victim = ws.containers("web")[0]
            subprocess.run(["docker", "kill", victim], capture_output=True, check=True)
            msg = stream.until("instance-left", "web", timeout=30)[-1]
            got = time.time()
            lags.append(got - float(msg.data["docker_at"]))
            wait_for(lambda: len(rotation_state(sc, "web")[0]) == 2, 60, "replaced")
            sc.settle()
        stream.close()
    finally:
        _stop(ws, sc)
    return {"kills": kills, "lags_s": lags, "median_s": median(lags), "max_s": max(lags)}


def _dashboards(port: int, stop: threading.Event) -> list[EventStream]:
    """Two open dashboards, as the page behaves: an event stream each (read on a thread of
    its own), and the status read every 10 s without events."""
    streams = []
    for _ in range(2):
        stream = EventStream(port, "?backlog=300", {"Authorization": f"Bearer {TOKEN}"})
        streams.append(stream)
        threading.Thread(target=_read_all, args=(stream, stop), daemon=True).start()
        threading.Thread(target=_status_every, args=(Api(port, TOKEN), stop), daemon=True).start()
    return streams


def _read_all(stream: EventStream, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            stream.next(timeout=3600)
        except (EOFError, OSError, ValueError):  # closed by the phase's end
            return


def _status_every(api: Api, stop: threading.Event, every: float = 10.0) -> None:
    while not stop.is_set():
        api.get("/v1/status")
        stop.wait(every)


def idle_cpu(base: Path, logs: Path, redis_url: str, seconds: float) -> Json:
    """The daemon's CPU share while nothing happens: without the server, then with it and
    two dashboards open."""
    out: Json = {"seconds": seconds}
    for label, http in (("without_server", False), ("with_server_2_dashboards", True)):
        ws, sc, port = _daemon(base, logs, redis_url, http)
        stop = threading.Event()
        streams = _dashboards(port, stop) if http else []
        try:
            time.sleep(2.0)  # the dashboards' first reads are not idle
            assert sc.proc is not None
            c0, t0 = cpu_seconds(sc.proc.pid), time.monotonic()
            time.sleep(seconds)
            used = cpu_seconds(sc.proc.pid) - c0
            out[label] = {"cpu_s": used, "share": used / (time.monotonic() - t0)}
        finally:
            stop.set()
            for stream in streams:
                stream.close()
            _stop(ws, sc)
    return out
