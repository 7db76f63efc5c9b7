"""Health probes for new instances: HTTP GET, TCP connect, or Docker's own healthcheck."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable

from sidecar.core.serving import HealthSpec
from sidecar.core.types import Instance


def probe_http(host: str, port: int, path: str, timeout: float) -> str | None:
    """None when healthy, else why not."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "compose-sidecar-health"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return None if 200 <= status < 400 else f"HTTP {status}"


def probe_tcp(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def wait_healthy(
    target: tuple[str, int],
    spec: HealthSpec,
    refresh: Callable[[], Instance | None],
    cancel: threading.Event,
) -> str | None:
    """Probe until `spec.successes` consecutive successes (None) or a reason to give up:
    start_timeout passed, the container exited, Docker said unhealthy, or cancelled."""
    deadline = time.monotonic() + spec.start_timeout
    good, last = 0, "not probed yet"
    host, port = target
    while time.monotonic() < deadline:
        if cancel.is_set():
            return "cancelled"
        # Docker is asked only when the probe alone cannot tell: for its healthcheck, or
        # after a failed probe (has the container exited?). A healthy start costs no call.
        inst = refresh() if spec.type == "docker" or last != "not probed yet" else None
        if inst is not None and inst.state not in ("running", "created"):
            return f"container {inst.state}"
        if spec.type == "docker":
            health = inst.health if inst else None
            err = None if health == "healthy" else f"docker health: {health}"
            if health == "unhealthy":
                return "docker healthcheck reported unhealthy"
        elif spec.type == "tcp":
            err = probe_tcp(host, port, spec.timeout)
        else:
            err = probe_http(host, port, spec.path, spec.timeout)
        if err is None:
            good += 1
            if good >= spec.successes:
                return None
        else:
            good, last = 0, err
        cancel.wait(spec.interval)
    return f"not healthy within {spec.start_timeout:g}s (last probe: {last})"
