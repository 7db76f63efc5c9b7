"""Bounded questions to dockerd: container events of a project in a time range, and whether
dockerd was restarted (which voids a measurement)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from testkit.wait import poll, run


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


def dockerd_identity() -> str:
    """pid and start time of the running dockerd, to notice a restart during a measurement
    (another job on the host may restart it, and that invalidates the figures)."""
    try:
        pid = Path("/var/run/docker.pid").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{pid}@{stat.rsplit(')', 1)[1].split()[19]}"  # field 22: starttime
    except (OSError, IndexError):
        return "?"


def docker_answers(timeout: float) -> bool:
    return poll(lambda: run("docker", "info", timeout=30).returncode == 0, timeout, 0.5)
