"""A killed instance costs no failed request: Traefik's retry middleware, published by the
sidecar with the rotation, sends a request whose connection failed to a live instance."""

from __future__ import annotations

import subprocess
import time
from functools import partial

from testkit.load import Load
from testkit.sidecar import Sidecar, converged, rotation_urls, start_served
from testkit.traefik import Traefik
from testkit.wait import wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory

KILLS = 5


def replaced(sc: Sidecar, victim: str) -> bool:
    return converged(sc, "web", 3) and victim not in sc.ws.containers("web")


def routed(sc: Sidecar, traefik: Traefik) -> bool:
    """Traefik's servers are the rotation's (its API)."""
    servers = traefik.servers(f"{sc.ws.name}-web@redis")
    return set(servers) == set(rotation_urls(sc, "web"))


def test_killing_one_of_three_five_times_fails_no_request(
    workspace: Workspace, sidecar: SidecarFactory, traefik: Traefik
) -> None:
    sc, host = start_served(workspace, sidecar, 3)
    name = f"{workspace.name}-web"
    # the middleware is part of the rotation's publication, and Traefik applies it
    assert sc.r.get(f"traefik/http/middlewares/{name}/retry/attempts") == "2"
    assert sc.r.get(f"traefik/http/routers/{name}/middlewares/0") == name
    wait_for(
        lambda: traefik.router_middlewares(f"{name}@redis") == [f"{name}@redis"],
        10,
        "traefik's router to use the retry middleware",
    )
    wait_for(lambda: len(set(traefik.servers(f"{name}@redis"))) == 3, 10, "3 servers in traefik")
    # a connection the killed instance's address never answers fails after 0.5 s, retried
    # (Traefik's API does not show transports; it logs "servers transport not found" when a
    # service names one it does not have)
    assert sc.r.get(f"traefik/http/serversTransports/{name}/forwardingTimeouts/dialTimeout") == (
        "0.5s"
    )
    service = traefik.api(f"/api/http/services/{name}@redis")
    assert service["loadBalancer"]["serversTransport"] == f"{name}@redis"

    with Load(traefik, host, rate=50) as load:
        for n in range(KILLS):
            time.sleep(1)
            victim = workspace.containers("web")[n % 3]
            subprocess.run(["docker", "kill", victim], capture_output=True, check=True)
            wait_for(partial(replaced, sc, victim), 30, f"a replacement serving after kill {n + 1}")
            # Traefik takes up a new server at most 2 s after it is written
            wait_for(partial(routed, sc, traefik), 10, "traefik to route to the replacement")
        time.sleep(1)
    failures = load.failures()
    print(f"{KILLS} kills of 1 of 3: {len(failures)} of {len(load.samples)} requests failed")
    assert len(load.samples) > 300
    assert failures == [], f"failed requests: {[(f.status, f.body) for f in failures][:5]}"
    assert load.bodies(0) == {"v0"}
    assert "servers transport not found" not in traefik.log.read_text()


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
