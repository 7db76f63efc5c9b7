"""Which Docker failures are worth a retry (sidecar.core.errors), and `sidecar check`."""

from __future__ import annotations

import json

import pytest

from sidecar.adapters.status import verdict
from sidecar.core.errors import docker_error_is_transient


@pytest.mark.parametrize(
    ("text", "transient"),
    [
        (
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker "
            "daemon running?",
            True,
        ),
        (
            "error during connect: Get http://...: dial unix /var/run/docker.sock: connect: "
            "connection refused",
            True,
        ),
        ("Error response from daemon: i/o timeout", False),  # a registry's, not the daemon
        (
            "Post http://docker/v1.41/build: dial unix /var/run/docker.sock: connect: no such "
            "file or directory",
            True,
        ),
        ("RUN curl http://x: curl: (7) Failed to connect: Connection refused", False),
        ("Error response from daemon: No such image: web:latest", False),
        ("Bind for 0.0.0.0:8080 failed: port is already allocated", False),
        ('service "web" refers to undefined network nope: invalid compose project', False),
        ("", False),
    ],
)
def test_docker_error_is_transient(text: str, transient: bool) -> None:
    assert docker_error_is_transient(text) is transient


@pytest.mark.parametrize(
    ("beat", "ok", "message"),
    [
        (None, False, "unhealthy: no fresh heartbeat"),
        ("{not json", False, "unhealthy: unreadable heartbeat"),
        (json.dumps({"pid": 1}), True, "healthy"),  # a daemon from before thread states
        (json.dumps({"threads": {"commands": "running", "watcher": "running"}}), True, "healthy"),
        (
            json.dumps({"threads": {"commands": "restarting: ResponseError: WRONGTYPE"}}),
            False,
            "unhealthy: thread commands restarting: ResponseError: WRONGTYPE",
        ),
        (
            json.dumps({"threads": {"docker-events": "dead: x", "commands": "running"}}),
            False,
            "unhealthy: thread docker-events dead: x",
        ),
    ],
)
def test_check_verdict(beat: str | None, ok: bool, message: str) -> None:
    assert verdict(beat) == (ok, message)
