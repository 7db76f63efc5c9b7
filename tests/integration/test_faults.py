"""Surviving faults: Redis restarting empty, the sidecar SIGKILLed mid-rollout, dockerd
restarting. Each test asserts the converged state within a stated bound."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from testkit.http import http_get
from testkit.redis_server import RedisServer
from testkit.sidecar import converged, docker_events_processes, served, start_served
from testkit.traefik import Traefik
from testkit.wait import wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory

REPO = Path(__file__).resolve().parents[2]


def test_redis_restart_republishes_everything(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik, redis_server: RedisServer
) -> None:
    sc, host = start_served(workspace, sidecar, 2)
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "traefik routes")
    before = sorted(workspace.containers("web"))

    redis_server.restart()  # a new, empty redis-server on the same port
    assert sc.r.exists(f"sidecar:{workspace.name}:heartbeat") == 0
    t0 = time.monotonic()
    wait_for(lambda: converged(sc, "web", 2), 15, "rotation and Traefik keys re-published")
    republished = time.monotonic() - t0
    wait_for(lambda: sc.r.exists(f"sidecar:{workspace.name}:heartbeat"), 10, "heartbeat")
    events = str(sc.r.config_get("notify-keyspace-events")["notify-keyspace-events"])
    assert {"K", "E"} <= set(events) and ("A" in events or "g" in events)
    assert sc.r.sismember(f"sidecar:{workspace.name}:services", "web")
    wait_for(
        lambda: sc.r.hlen(f"sidecar:{workspace.name}:hashes:web") > 1,
        10,
        "hash cache rebuilt by a rescan",
    )
    wait_for(lambda: traefik.get(host) == (200, "v0"), 20, "traefik routes again")
    assert sc.builds("web") == 0, "nothing was rebuilt (the new Redis's stream says so)"
    assert sorted(workspace.containers("web")) == before, "no instance was replaced"
    assert sc.events("resynced")
    print(f"redis restart: everything re-published {republished:.2f}s after Redis came back")
    assert republished < 10


def test_sigkill_mid_rollout_converges_on_restart(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    sc, host = start_served(workspace, sidecar, 2)
    workspace.write("web/www/index.html", "v1\n")
    # kill it while the rollout has three instances: one new, two old
    wait_for(lambda: len(workspace.containers("web")) == 3, 30, "the rollout's new instance")
    assert sc.proc is not None
    sc.stop(signal.SIGKILL)
    wait_for(
        lambda: not docker_events_processes(workspace.name),
        5,
        "the killed sidecar's docker events process to go too",
    )

    sc.start()
    t0 = time.monotonic()
    wait_for(
        lambda: converged(sc, "web", 2) and traefik.get(host) == (200, "v1"),
        60,
        "two instances of the new version, rotation == Traefik == running",
    )
    sc.settle()
    print(f"SIGKILL mid-rollout: converged {time.monotonic() - t0:.1f}s after the restart")
    assert converged(sc, "web", 2)
    assert len(workspace.containers("web", all_=True)) == 2, "no orphan half-started instance"
    assert len(docker_events_processes(workspace.name)) == 1


def restart_dockerd() -> None:
    """A real restart of the daemon the suite runs on: SIGTERM, wait until the process is
    gone (it stops every container first), start it again with the project's script."""
    subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=False)
    wait_for(
        lambda: (
            subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, check=False).returncode
            != 0
        ),
        90,
        "dockerd to exit",
    )
    subprocess.run(["bash", str(REPO / "scripts" / "start-dockerd.sh")], check=True)


def test_docker_daemon_restart_is_survived(workspace: Workspace, sidecar: SidecarFactory) -> None:
    served(workspace, "web", replicas=2)
    port = workspace.add_service("plain", content="p0")
    workspace.write_compose()
    sc = sidecar(docker_retry_max_s="2")
    sc.start()
    wait_for(lambda: converged(sc, "web", 2), 30, "two instances serving")
    wait_for(lambda: http_get(port) == "p0", 20, "plain service serving")
    try:
        restart_dockerd()
    finally:  # whatever happens, leave a daemon running for the rest of the suite
        subprocess.run(["bash", str(REPO / "scripts" / "start-dockerd.sh")], check=False)
    t0 = time.monotonic()
    wait_for(lambda: sc.events("docker-reconnected"), 30, "the sidecar to reconnect")
    wait_for(lambda: converged(sc, "web", 2), 60, "served replicas back and in rotation")
    wait_for(lambda: http_get(port) == "p0", 30, "the plain service back up")
    print(f"dockerd restart: converged {time.monotonic() - t0:.1f}s after the daemon returned")
    assert sc.proc is not None and sc.proc.poll() is None, "the sidecar kept running"
    assert len(docker_events_processes(workspace.name)) == 1
    assert sc.events("docker-disconnected")
