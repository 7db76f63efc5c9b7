"""Docker events keep the rotation true within milliseconds and the replicas at their count."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from typing import Any

import pytest

from testkit.load import Load
from testkit.sidecar import converged, rotation_urls, served, start_served, url_of
from testkit.traefik import Traefik
from testkit.wait import wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], capture_output=True, check=True)


def test_killed_instance_leaves_at_once_and_is_replaced(
    workspace: Workspace,
    sidecar: SidecarFactory,
    traefik: Traefik,
    record_property: Any,
) -> None:
    sc, host = start_served(workspace, sidecar, 2)
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "traefik routes")
    time.sleep(2.5)  # let Traefik pick up both servers

    with Load(traefik, host, rate=50) as load:
        time.sleep(1)
        victim = workspace.containers("web")[0]
        url = url_of(sc, victim)
        t0 = time.monotonic()
        docker("kill", victim)
        wait_for(lambda: url not in rotation_urls(sc, "web"), 2, "the killed URL to leave", 0.002)
        removed_after = time.monotonic() - t0
        wait_for(
            lambda: converged(sc, "web", 2) and victim not in workspace.containers("web"),
            30,
            "a replacement serving",
        )
        time.sleep(3)
    failed = len(load.failures())
    record_property("rotation_removal_s", round(removed_after, 4))
    record_property("failed_requests_during_kill", failed)
    print(
        f"kill of 1 of 2: URL left the rotation after {removed_after * 1000:.0f} ms; "
        f"{failed} of {len(load.samples)} requests through Traefik failed"
    )
    assert removed_after < 1.0
    assert failed <= 10, "only requests in flight to the killed instance may fail"
    assert load.failures(since=time.time() - 3) == []


@pytest.mark.parametrize("how", ["rm", "scale"])
def test_hand_made_changes_converge_back(
    workspace: Workspace, sidecar: SidecarFactory, how: str
) -> None:
    sc, _ = start_served(workspace, sidecar, 2)
    if how == "rm":
        docker("rm", "-f", workspace.containers("web")[0])
    else:
        workspace.compose("up", "-d", "--no-deps", "--no-recreate", "--scale", "web=4", "web")
    wait_for(lambda: converged(sc, "web", 2), 40, "back to exactly the declared 2")
    time.sleep(1.5)
    assert converged(sc, "web", 2)
    instances = sc.r.hgetall(f"sidecar:{workspace.name}:instances:web")
    live = set(workspace.containers("web"))
    assert {str(i)[:12] for i in instances} == live, "no state points at a gone container"
    assert all(json.loads(v)["state"] == "serving" for v in instances.values())


def test_paused_instance_leaves_and_rejoins(workspace: Workspace, sidecar: SidecarFactory) -> None:
    sc, _ = start_served(workspace, sidecar, 2)
    victim = workspace.containers("web")[0]
    url = url_of(sc, victim)
    docker("pause", victim)
    wait_for(lambda: url not in rotation_urls(sc, "web"), 2, "the paused URL to leave", 0.002)
    assert len(workspace.containers("web", all_=True)) == 2, "a paused instance is not replaced"
    docker("unpause", victim)
    wait_for(lambda: url in rotation_urls(sc, "web"), 20, "the unpaused instance to rejoin")
    assert converged(sc, "web", 2)


CRASHING = """FROM scratch
COPY busybox /bin/busybox
COPY www /www
CMD ["/bin/busybox", "sh", "-c", "/bin/busybox httpd -p 8080 -h /www; sleep 1; exit 3"]
"""


def test_crash_loop_backs_off_then_marks_failed(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    served(workspace, "web", replicas=1)
    workspace.write_compose()
    workspace.write("web/Dockerfile", CRASHING)  # serves, passes its probe, dies a second later
    sc = sidecar(
        crash_backoff_base_s="0.5",
        crash_max_failures="4",
        crash_window_s="60",
        resync_interval_s="300",
    )
    sc.start(wait=False)
    failed = wait_for(lambda: sc.events("service-failed", "web"), 60, "service-failed")
    assert "4 deaths" in failed[-1]["error"]
    status = sc.status()["services"]["web"]
    assert status["state"] == "failed"
    time.sleep(4)  # a replacement already under way finishes
    replacements = len(sc.events("converged", "web"))
    time.sleep(4)
    assert len(sc.events("converged", "web")) == replacements, "no more replacements"
    replaced_at = [float(e["at"]) for e in sc.events("converged", "web")]
    gaps = [b - a for a, b in itertools.pairwise(replaced_at)]
    assert gaps and max(gaps) >= 0.9, f"replacements back off: {gaps}"


SLOW_EXIT = """FROM scratch
COPY busybox /bin/busybox
COPY www /www
CMD ["/bin/busybox", "sh", "-c", \
     "trap 'sleep 4; exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait"]
"""


def test_stopping_instance_is_not_readmitted_and_is_replaced_at_once(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    served(workspace, "web", replicas=2)
    workspace.write_compose()
    workspace.write("web/Dockerfile", SLOW_EXIT)  # keeps serving for 4 s after SIGTERM
    sc = sidecar()
    sc.start()
    wait_for(lambda: converged(sc, "web", 2), 30, "two instances serving")
    victim = workspace.containers("web")[0]
    url = url_of(sc, victim)
    stopper = subprocess.Popen(["docker", "stop", "-t", "10", victim])
    try:
        t0 = time.monotonic()
        wait_for(lambda: url not in rotation_urls(sc, "web"), 2, "the stopping URL to leave", 0.002)
        replaced = False
        while time.monotonic() - t0 < 3.5:  # the victim still runs and answers meanwhile
            urls = rotation_urls(sc, "web")
            assert url not in urls, "a stopping instance must not be admitted again"
            replaced = replaced or len(urls) == 2
            time.sleep(0.05)
        assert replaced, "the replacement serves before the stopping instance has exited"
    finally:
        stopper.wait(30)
    assert not sc.events("instance-unhealthy", "web")


def test_kills_by_hand_are_not_crashes(workspace: Workspace, sidecar: SidecarFactory) -> None:
    served(workspace, "web", replicas=1)
    workspace.write_compose()
    sc = sidecar(crash_max_failures="3")
    sc.start()
    for n in range(4):
        wait_for(lambda: converged(sc, "web", 1), 30, f"serving before kill {n + 1}")
        docker("kill", workspace.containers("web")[0])
        wait_for(
            lambda: not workspace.containers("web") or converged(sc, "web", 1),
            30,
            "the kill to be seen",
        )
    wait_for(lambda: converged(sc, "web", 1), 30, "replaced after the last kill")
    assert not sc.events("service-failed", "web"), "someone's docker kill is not a crash loop"
