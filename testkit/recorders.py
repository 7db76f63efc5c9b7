"""Recorders that run beside a measurement and timestamp what happened: every container event
of the host (one `docker events` process), and every change of a Redis key (keyspace
notifications, with the list read right after each)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class DockerEvent:
    at: float  # dockerd's timeNano, as unix seconds
    received: float
    action: str
    container: str
    name: str
    attrs: dict[str, str]


class DockerEventLog:
    """`docker events --format '{{json .}}'` for every container of the host, parsed in a
    thread, reconnected while dockerd is away (the gaps are recorded). The caller's own
    events time a measurement; the others matter too: Traefik's Docker provider re-lists the
    containers on every start, die and health_status of any container of the host."""

    def __init__(self) -> None:
        self.events: list[DockerEvent] = []
        # (stream lost, stream back): dockerd went away (e.g. restarted) and took the stream
        self.gaps: list[tuple[float, float | None]] = []
        self.proc: subprocess.Popen[str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[str]:
        self.proc = subprocess.Popen(
            ["docker", "events", "--format", "{{json .}}", "--filter", "type=container"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return self.proc

    def _run(self) -> None:
        proc = self.proc
        while proc is not None and not self._stop.is_set():
            self._read(proc)
            proc.wait()
            if self._stop.is_set():
                return
            self.gaps.append((time.time(), None))
            while not self._stop.wait(1.0):  # reconnect once dockerd answers again
                proc = self._spawn()
                try:
                    proc.wait(0.5)  # exits at once while the daemon is away
                except subprocess.TimeoutExpired:
                    self.gaps[-1] = (self.gaps[-1][0], time.time())
                    break

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            received = time.time()
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue
            actor = raw.get("Actor") or {}
            attrs = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
            self.events.append(
                DockerEvent(
                    at=int(raw.get("timeNano") or 0) / 1e9,
                    received=received,
                    action=str(raw.get("Action") or raw.get("status") or ""),
                    container=str(raw.get("id") or actor.get("ID") or ""),
                    name=attrs.get("name", ""),
                    attrs=attrs,
                )
            )

    def stop(self) -> None:
        self._stop.set()
        self._terminate(self.proc)
        self._thread.join(5)
        self._terminate(self.proc)  # one a reconnect spawned meanwhile

    @staticmethod
    def _terminate(proc: subprocess.Popen[str] | None) -> None:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def gap_during(self, since: float, until: float) -> bool:
        return any(lost <= until and (back is None or back >= since) for lost, back in self.gaps)

    def between(self, since: float, until: float) -> list[DockerEvent]:
        return [e for e in list(self.events) if since <= e.at <= until]


@dataclass(frozen=True)
class Notice:
    at: float  # when the notification arrived here
    op: str  # del, rpush...
    urls: tuple[str, ...]  # the list read right after it


class ListWatch:
    """Subscribes to `__keyspace@0__:<key>` of a Redis list; timestamps each notification and
    reads the list right after it (a MULTI/EXEC is applied whole before its notifications go
    out). The Redis must have keyspace notifications on (the sidecar turns them on)."""

    def __init__(self, url: str, key: str) -> None:
        self.key = key
        self.sub = redis.Redis.from_url(url, decode_responses=True)
        self.reader = redis.Redis.from_url(url, decode_responses=True)
        self.notices: list[Notice] = []
        self._stop = threading.Event()
        self._pubsub = self.sub.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, name="keyspace", daemon=True)

    def start(self) -> None:
        self._pubsub.subscribe(f"__keyspace@0__:{self.key}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._pubsub.get_message(timeout=0.5)
            if not msg or msg.get("type") != "message":
                continue
            at = time.time()
            urls = tuple(str(u) for u in self.reader.lrange(self.key, 0, -1))
            self.notices.append(Notice(at, str(msg.get("data")), urls))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()
        self.sub.close()
        self.reader.close()

    def urls(self) -> list[str]:
        return [str(u) for u in self.reader.lrange(self.key, 0, -1)]
