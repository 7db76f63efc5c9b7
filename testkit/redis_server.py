"""A private redis-server on a free loopback port, and reading the sidecar's events stream."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from testkit.wait import free_port, wait_for


def read_events(
    r: redis.Redis, project: str, kind: str | None = None, service: str | None = None
) -> list[dict[str, str]]:
    """The sidecar's events stream, oldest first, optionally one kind and one service."""
    entries = r.xrange(f"sidecar:{project}:events") or []
    out = [{str(k): str(v) for k, v in (fields or {}).items()} for _, fields in entries]
    if kind:
        out = [e for e in out if e.get("event") == kind]
    if service:
        out = [e for e in out if e.get("service") == service]
    return out


class RedisServer:
    """A private redis-server on a free loopback port (stoppable and restartable)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with redis.Redis(port=self.port, socket_connect_timeout=0.5) as client:
            wait_for(lambda: _pings(client), 10, "redis-server to answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self) -> None:
        """A real restart: the process ends and a new, empty one takes the same port."""
        self.stop()
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
