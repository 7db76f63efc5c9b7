"""develop.watch on a real dockerd, Redis and Traefik: sync, delete, touch, restart, exec,
initial_sync, new replicas, invalid and edited rules. Fixture images are FROM scratch with a
static busybox: `busybox rm` deletes there; the no-rm image runs busybox as `httpd` only."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

from testkit.http import get_url, http_get
from testkit.load import Load
from testkit.sidecar import Sidecar, rotation_state, served
from testkit.traefik import Traefik
from testkit.wait import wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory

SYNC = {"action": "sync", "path": "./web/www", "target": "/www"}
REBUILD = {"action": "rebuild", "path": "./web/Dockerfile"}
# busybox as /bin/httpd alone: the image has no rm and no busybox applet a shell could call
NO_RM_DOCKERFILE = """FROM scratch
COPY busybox /bin/httpd
COPY www /www
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def develop(ws: Workspace, name: str, *rules: dict[str, Any]) -> None:
    ws.services[name]["develop"] = {"watch": list(rules)}
    ws.write_compose()


def events_reach(sc: Sidecar, kind: str, n: int) -> Callable[[], bool]:
    return lambda: len(sc.events(kind, "web")) >= n


def container_ids(ws: Workspace, service: str) -> list[str]:
    return sorted(ws.containers(service))


def test_an_edit_is_served_without_a_new_container_and_a_delete_disappears(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    port = workspace.add_service("web", content="v1")
    workspace.write("web/www/gone.html", "here\n")
    develop(workspace, "web", SYNC, REBUILD)
    sc = sidecar()
    sc.start()
    wait_for(lambda: http_get(port) == "v1", 20, "v1 served after start")
    sc.settle()
    before = container_ids(workspace, "web")

    workspace.write("web/www/index.html", "v2\n")
    wait_for(lambda: http_get(port) == "v2", 5, "v2 served after the sync")
    workspace.write("web/www/new/deep.html", "deep\n")  # a new directory
    wait_for(lambda: http_get(port, "/new/deep.html") == "deep", 5, "new directory synced")
    assert http_get(port, "/gone.html") == "here"
    os.unlink(workspace.root / "web/www/gone.html")
    wait_for(lambda: http_get(port, "/gone.html") is None, 5, "deleted file gone")
    sc.settle()
    assert container_ids(workspace, "web") == before
    assert sc.builds("web") == 0
    synced = sc.events("synced", "web")
    assert len(synced) == 3 and synced[-1]["deleted"] == "1"
    assert sc.status()["services"]["web"]["last_sync_result"] == "ok"


def test_a_touch_syncs_nothing(workspace: Workspace, sidecar: SidecarFactory) -> None:
    workspace.add_service("web")
    develop(workspace, "web", SYNC)
    sc = sidecar()
    sc.start()
    sc.settle()
    for path in (workspace.root / "web/www").rglob("*"):
        os.utime(path)
    workspace.write("web/www/index.html", "v1\n")  # a save without edits
    time.sleep(1.0)
    sc.settle()
    assert sc.events("sync-started", "web") == []
    assert sc.events("synced", "web") == []


def test_a_delete_in_an_image_without_rm_rebuilds_and_says_so(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    port = workspace.add_service("web", content="v1")
    workspace.write("web/Dockerfile", NO_RM_DOCKERFILE)
    workspace.write("web/www/gone.html", "here\n")
    develop(workspace, "web", SYNC, REBUILD)
    sc = sidecar()
    sc.start()
    wait_for(lambda: http_get(port, "/gone.html") == "here", 20, "served after start")
    sc.settle()
    os.unlink(workspace.root / "web/www/gone.html")
    wait_for(lambda: http_get(port, "/gone.html") is None, 30, "deleted file gone")
    sc.settle()
    [fallback] = sc.events("sync-fallback", "web")
    assert "no rm" in fallback["reason"]
    assert sc.builds("web") == 1


def test_sync_restart_of_a_served_service_under_load_loses_nothing(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    host = served(workspace, "web", replicas=2)
    develop(workspace, "web", {**SYNC, "action": "sync+restart"})
    sc = sidecar()
    sc.start()
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "v0 served through traefik")
    sc.settle()
    before = container_ids(workspace, "web")
    with Load(traefik, host, rate=50) as load:
        for n in (1, 2):
            workspace.write("web/www/index.html", f"v{n}\n")
            wait_for(events_reach(sc, "restarted", n), 60, f"restart {n}", 0.1)
            time.sleep(1.0)
            assert load.bodies(since=time.time() - 0.5) == {f"v{n}"}
    assert len(load.samples) > 100
    assert load.failures() == [], f"{len(load.failures())} failed: {load.failures()[:5]}"
    assert container_ids(workspace, "web") == before  # restarted, not replaced
    rotation, servers, running = rotation_state(sc, "web")
    assert rotation == servers == running and len(running) == 2


def test_sync_exec_runs_once_per_container_and_a_failure_is_reported(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    host = served(workspace, "web", replicas=2)
    command = ["busybox", "sh", "-c", "echo ran >> /www/log.txt; exit 3"]
    develop(workspace, "web", {**SYNC, "action": "sync+exec", "exec": {"command": command}})
    sc = sidecar()
    sc.start()
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "v0 served through traefik")
    sc.settle()
    for n in range(5):  # one batch
        workspace.write(f"web/www/f{n}.html", f"{n}\n")
    wait_for(lambda: len(sc.events("exec-finished", "web")) >= 2, 20, "exec in both", 0.1)
    sc.settle()
    finished = sc.events("exec-finished", "web")
    assert len(finished) == 2
    assert {e["exit_code"] for e in finished} == {"3"} and {e["result"] for e in finished} == {
        "failed"
    }
    for cid in workspace.containers("web"):
        log = subprocess.run(
            ["docker", "exec", cid, "busybox", "cat", "/www/log.txt"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert log.stdout.count("ran") == 1, cid
    assert traefik.get(host) == (200, "v0")  # still serving


def test_a_new_replica_started_by_scale_serves_the_synced_content(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    host = served(workspace, "web", replicas=1)
    develop(workspace, "web", SYNC)
    sc = sidecar()
    sc.start()
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "v0 served through traefik")
    sc.settle()
    workspace.write("web/www/index.html", "synced\n")
    wait_for(lambda: traefik.get(host) == (200, "synced"), 10, "synced content served")
    sc.settle()
    command = {"action": "scale", "service": "web", "replicas": "3", "id": "s3"}
    sc.r.xadd(f"sidecar:{workspace.name}:commands", command)  # type: ignore[arg-type]
    wait_for(lambda: len(rotation_state(sc, "web")[2]) == 3, 60, "3 serving")
    sc.settle()
    rotation, servers, running = rotation_state(sc, "web")
    assert rotation == servers == running
    for url in running:  # each instance itself, not only what Traefik picks
        assert get_url(url + "/") == "synced", url


def test_initial_sync_brings_a_container_started_before_the_sidecar_up_to_date(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    port = workspace.add_service("web", content="v1")
    develop(workspace, "web", {**SYNC, "initial_sync": True})
    workspace.compose("up", "-d")
    wait_for(lambda: http_get(port) == "v1", 20, "v1 served by compose")
    cid = container_ids(workspace, "web")
    workspace.write("web/www/index.html", "edited while nobody watched\n")
    sc = sidecar()
    sc.start()
    wait_for(lambda: http_get(port) == "edited while nobody watched", 10, "initial sync")
    sc.settle()
    assert container_ids(workspace, "web") == cid


def test_an_invalid_rule_is_reported_and_a_rule_edit_takes_effect(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    port = workspace.add_service("web", content="v1")
    develop(workspace, "web", SYNC)
    sc = sidecar()
    sc.start()
    wait_for(lambda: http_get(port) == "v1", 20, "v1 served after start")
    sc.settle()
    cid = container_ids(workspace, "web")

    develop(workspace, "web", {"action": "sync", "path": "./web/www"})  # no target
    wait_for(lambda: sc.events("service-invalid", "web"), 10, "service-invalid")
    [invalid] = sc.events("service-invalid", "web")
    assert "develop.watch[0].target" in invalid["error"]
    workspace.write("web/www/index.html", "still synced\n")  # the old rule still applies
    wait_for(lambda: http_get(port) == "still synced", 5, "old rule kept")

    develop(workspace, "web", {"action": "sync", "path": "./web/www", "target": "/www/sub"})
    wait_for(lambda: len(sc.events("project-reloaded")) >= 1, 10, "reloaded")
    sc.settle()
    workspace.write("web/www/index.html", "moved\n")
    wait_for(lambda: http_get(port, "/sub/index.html") == "moved", 5, "the edited rule applies")
    assert container_ids(workspace, "web") == cid
