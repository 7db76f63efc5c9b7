"""Starting, stopping and health of the daemon process."""

from __future__ import annotations

import signal
import subprocess
import sys

from testkit.sidecar import converged, served
from testkit.wait import wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory


def test_sigterm_stops_quickly_and_check_follows_heartbeat(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    workspace.add_service("web")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    check = [sys.executable, "-m", "sidecar", "check"]
    assert subprocess.run(check, env=sc.env(), capture_output=True, check=False).returncode == 0
    took = sc.stop(signal.SIGTERM)
    assert took < 5
    assert subprocess.run(check, env=sc.env(), capture_output=True, check=False).returncode == 1
    assert sc.events("stopped")


def test_sigint_during_build_leaves_no_half_made_containers(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    workspace.add_service("web")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    sc.settle()
    before = workspace.containers("web", all_=True)
    workspace.write("web/www/index.html", "v2\n")
    wait_for(lambda: sc.events("build-started", "web"), 20, "the build to start")
    took = sc.stop(signal.SIGINT)
    assert took < 8
    after = workspace.containers("web", all_=True)
    assert len(after) == len(before) == 1, "exactly one web container, old or new"


def test_out_of_inotify_watches_is_a_clear_error(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    workspace.add_service("web")
    for i in range(10):
        workspace.write(f"web/www/d{i}/x.html", "x\n")
    workspace.write_compose()
    sc = sidecar()
    # a user namespace with a watch limit of 3: real exhaustion, nothing else affected
    script = "echo 3 > /proc/sys/user/max_inotify_watches && exec " + " ".join(
        [sys.executable, "-m", "sidecar", "run"]
    )
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", script],
        env=sc.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "out of inotify watches" in proc.stderr
    assert "needs about 1" in proc.stderr  # 13+ directories: the count is given
    assert "sysctl -w fs.inotify.max_user_watches=" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_failing_thread_is_restarted_and_check_names_it(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    """The command reader hits a Redis error that is not a lost connection (the stream key
    holds a string: WRONGTYPE). It must not die unseen: `check` fails naming the thread,
    and once the key is fixed the thread runs again and commands are answered."""
    workspace.add_service("web")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    r = sc.r
    key = f"sidecar:{workspace.name}:commands"
    check = [sys.executable, "-m", "sidecar", "check"]
    r.delete(key)
    r.set(key, "not a stream")

    def unhealthy() -> str | None:
        proc = subprocess.run(check, env=sc.env(), capture_output=True, text=True, check=False)
        return proc.stdout if proc.returncode == 1 and "thread commands" in proc.stdout else None

    out = wait_for(unhealthy, 30, "check to name the failing commands thread")
    assert out is not None
    assert "WRONGTYPE" in out
    assert "restarting" in out
    assert "thread commands failed" in sc.log_tail(400)
    r.delete(key)

    def healthy() -> bool:
        proc = subprocess.run(check, env=sc.env(), capture_output=True, check=False)
        return proc.returncode == 0

    wait_for(healthy, 30, "the commands thread to run again")
    proc = subprocess.run(
        [sys.executable, "-m", "sidecar", "reload"],
        env=sc.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_two_served_services_built_at_start_share_one_network(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    """Two first `compose up`s at once made two `<project>_default` networks; one service's
    instances landed on the other and never got an address: it never served."""
    served(workspace, "web", replicas=2)
    served(workspace, "api", replicas=1)
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: converged(sc, "web", 2) and converged(sc, "api", 1), 60, "both serving")
    out = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", f"name=^{workspace.name}_default$"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(out) == 1, out
