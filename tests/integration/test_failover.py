"""Traefik's retry middleware, published by the sidecar with the rotation, sends a request
whose connection failed to a live instance. Tested with an instance that refuses connections
while it stays in the rotation, and requests one after the other, so the retry's target is
the balancer's next pick and the outcome is exact. (Kills under concurrent load are measured by
bench/failover: a retry can pick the dying server again from Traefik's previous configuration,
so there they cost a few requests, not none.)"""

from __future__ import annotations

import subprocess
from functools import partial

from testkit.sidecar import Sidecar, converged, rotation_urls, served, start_served
from testkit.traefik import Traefik
from testkit.wait import wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory


def routed(sc: Sidecar, traefik: Traefik) -> bool:
    """Traefik's servers are the rotation's (its API)."""
    servers = traefik.servers(f"{sc.ws.name}-web@redis")
    return set(servers) == set(rotation_urls(sc, "web"))


# httpd runs in the background of a shell, so it can stop while its container keeps running:
# an instance that still is in the rotation but refuses connections (the sidecar sees no event)
REFUSING = [
    "/bin/busybox",
    "sh",
    "-c",
    "/bin/busybox httpd -f -p 8080 -h /www & echo $! > /httpd.pid; exec /bin/busybox sleep 3600",
]
REQUESTS = 150


def _one_refusing(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik, **serve: object
) -> tuple[Sidecar, str]:
    host = served(workspace, "web", replicas=3, **serve)
    workspace.services["web"]["command"] = REFUSING
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: converged(sc, "web", 3), 30, "3 instances serving")
    wait_for(partial(routed, sc, traefik), 10, "traefik to route to the 3 instances")
    victim = workspace.containers("web")[0]
    workspace_exec(
        victim, "/bin/busybox", "sh", "-c", "/bin/busybox kill $(/bin/busybox cat /httpd.pid)"
    )
    assert victim in workspace.containers("web"), "the container runs on, its port closed"
    return sc, host


def workspace_exec(container: str, *cmd: str) -> None:
    subprocess.run(["docker", "exec", container, *cmd], capture_output=True, check=True)


def test_retry_sends_a_refused_request_to_a_live_instance(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    """One instance of three refuses connections while it stays in the rotation; requests
    one after the other (so the retry is the balancer's next pick, deterministically): none
    fails. The same with retry off loses about a third (the next test)."""
    sc, host = _one_refusing(workspace, sidecar, traefik)
    name = f"{workspace.name}-web"
    # the middleware is part of the rotation's publication, and Traefik applies it
    assert sc.r.get(f"traefik/http/middlewares/{name}/retry/attempts") == "2"
    assert sc.r.get(f"traefik/http/routers/{name}/middlewares/0") == name
    wait_for(
        lambda: traefik.router_middlewares(f"{name}@redis") == [f"{name}@redis"],
        10,
        "traefik's router to use the retry middleware",
    )
    # a connection the killed instance's address never answers fails after 0.5 s, retried
    # (Traefik's API does not show transports; it logs "servers transport not found" when a
    # service names one it does not have)
    assert sc.r.get(f"traefik/http/serversTransports/{name}/forwardingTimeouts/dialTimeout") == (
        "0.5s"
    )
    service = traefik.api(f"/api/http/services/{name}@redis")
    assert service["loadBalancer"]["serversTransport"] == f"{name}@redis"
    results = [traefik.get(host) for _ in range(REQUESTS)]
    failed = [r for r in results if r != (200, "v0")]
    assert failed == [], f"{len(failed)} of {REQUESTS} failed: {failed[:3]}"
    assert len(set(traefik.servers(f"{name}@redis"))) == 3  # the refusing one still routed
    assert "servers transport not found" not in traefik.log.read_text()


def test_without_retry_a_refusing_instance_fails_its_share(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    _, host = _one_refusing(workspace, sidecar, traefik, retry={"attempts": 0})
    results = [traefik.get(host) for _ in range(REQUESTS)]
    failed = [r for r in results if r != (200, "v0")]
    # round robin over 3 servers: every third request goes to the refusing one
    assert REQUESTS // 3 - 5 <= len(failed) <= REQUESTS // 3 + 5, len(failed)


def test_zero_attempts_publishes_no_middleware(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    sc, host = start_served(workspace, sidecar, 1, retry={"attempts": 0})
    name = f"{workspace.name}-web"
    wait_for(lambda: traefik.get(host) == (200, "v0"), 10, "traefik routes")
    assert traefik.router_middlewares(f"{name}@redis") == []
    assert list(sc.r.scan_iter(f"traefik/http/*/{name}/middlewares/*")) == []
    assert list(sc.r.scan_iter(f"traefik/http/middlewares/{name}/*")) == []
    assert list(sc.r.scan_iter(f"traefik/http/serversTransports/{name}/*")) == []
    assert "serversTransport" not in traefik.api(f"/api/http/services/{name}@redis")["loadBalancer"]
    assert converged(sc, "web", 1)
