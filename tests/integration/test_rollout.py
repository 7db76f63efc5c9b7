"""Zero-downtime redeploys of served services behind a real Traefik reading Redis."""

from __future__ import annotations

import json
import time
from typing import Any

from testkit.http import http_get
from testkit.load import Load
from testkit.sidecar import rotation_state, served, wait_job
from testkit.traefik import Traefik
from testkit.wait import wait_for
from testkit.workspace import DOCKERFILE, Workspace
from tests.integration.conftest import SidecarFactory


def test_ten_edits_under_load_fail_no_request(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    host = served(workspace, "web", replicas=2)
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "v0 served through traefik")
    sc.settle()

    with Load(traefik, host, rate=50) as load:
        for n in range(1, 11):
            before = len(sc.events("job-finished", "web"))
            workspace.write("web/www/index.html", f"v{n}\n")
            job = wait_job(sc, "web", before)
            assert job["result"] == "ok", sc.log_tail()
            finished = float(job["at"])
            time.sleep(1.0)
            assert load.bodies(since=finished) == {f"v{n}"}, f"only v{n} after rollout {n}"
    assert load.samples and len(load.samples) > 500
    assert load.failures() == [], f"{len(load.failures())} failed: {load.failures()[:5]}"
    rotation, servers, running = rotation_state(sc, "web")
    assert rotation == servers == running
    assert len(running) == 2


def test_unhealthy_version_keeps_old_serving(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    host = served(workspace, "web", replicas=2)
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "v0 served")
    sc.settle()
    before_state = rotation_state(sc, "web")

    with Load(traefik, host, rate=50) as load:
        before = len(sc.events("job-finished", "web"))
        # the new version listens on the wrong port: it never passes its health check
        workspace.write("web/Dockerfile", DOCKERFILE.replace('"8080"', '"9999"'))
        job = wait_job(sc, "web", before)
        time.sleep(1.0)
    assert job["result"] == "failed"
    assert load.failures() == []
    assert load.bodies(since=0) == {"v0"}
    unhealthy = sc.events("instance-unhealthy", "web")
    assert unhealthy and "not healthy within" in unhealthy[-1]["error"]
    assert "logs" in unhealthy[-1]
    assert rotation_state(sc, "web") == before_state


def test_scale_replicas_in_compose_file(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    host = served(workspace, "web", replicas=2)
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "v0 served")
    sc.settle()
    first = set(workspace.containers("web"))

    with Load(traefik, host, rate=50) as load:
        before = len(sc.events("job-finished", "web"))
        workspace.services["web"]["x-sidecar"]["replicas"] = 3
        workspace.write_compose()
        assert wait_job(sc, "web", before)["result"] == "ok"
        three = set(workspace.containers("web"))
        assert len(three) == 3 and first < three, "one added, none replaced"
        assert len(rotation_state(sc, "web")[0]) == 3

        before = len(sc.events("job-finished", "web"))
        workspace.services["web"]["x-sidecar"]["replicas"] = 2
        workspace.write_compose()
        assert wait_job(sc, "web", before)["result"] == "ok"
        time.sleep(0.5)
    two = set(workspace.containers("web"))
    assert len(two) == 2 and two < three
    assert load.failures() == []
    rotation, servers, running = rotation_state(sc, "web")
    assert rotation == servers == running and len(running) == 2
    instances = sc.r.hgetall(f"sidecar:{workspace.name}:instances:web")
    assert sorted(json.loads(v)["state"] for v in instances.values()) == ["serving", "serving"]


def test_invalid_x_sidecar_is_reported_and_left_alone(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    host = served(workspace, "web", replicas=1)
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "v0 served")
    sc.settle()
    running = workspace.containers("web")

    workspace.services["web"]["x-sidecar"]["replicas"] = "lots"
    workspace.services["web"]["x-sidecar"]["rollout"] = {"order": "sideways"}
    workspace.write_compose()
    invalid = wait_for(lambda: sc.events("service-invalid", "web"), 20, "service-invalid")
    assert "replicas" in invalid[-1]["error"] and "rollout.order" in invalid[-1]["error"]
    assert "service web" in invalid[-1]["error"]
    sc.settle()
    assert workspace.containers("web") == running
    assert traefik.get(host) == (200, "v0")


def test_host_url_mode_publishes_reachable_host_ports(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    extra: dict[str, Any] = {
        "ports": ["127.0.0.1::8080"],
        "x-sidecar": {"port": 8080, "replicas": 2, "health": {"start_timeout": 5}},
    }
    workspace.add_service("web", None, "v0", False, **extra)
    workspace.write_compose()
    sc = sidecar(url_mode="host")
    sc.start()
    key = f"sidecar:{workspace.name}:rotation:web"

    def urls() -> list[str]:
        return [str(u) for u in sc.r.lrange(key, 0, -1)]

    wait_for(lambda: len(urls()) == 2, 30, "two URLs in the rotation")
    ports = set()
    for url in urls():
        host, port = str(url).removeprefix("http://").split(":")
        assert host == "127.0.0.1"
        ports.add(int(port))
        assert http_get(int(port)) == "v0"
    assert len(ports) == 2, "each instance has its own host port"
