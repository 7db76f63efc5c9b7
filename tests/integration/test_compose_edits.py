"""The sidecar follows edits of the compose file itself."""

from __future__ import annotations

import time

from testkit.http import http_get
from testkit.wait import wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory


def test_added_service_comes_up_and_is_watched(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    workspace.add_service("web")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    sc.settle()

    port = workspace.add_service("api", content="api1")
    workspace.write_compose()
    wait_for(lambda: http_get(port) == "api1", 30, "the added service to serve")
    sc.settle()
    workspace.write("api/www/index.html", "api2\n")
    wait_for(lambda: http_get(port) == "api2", 30, "the added service to be rebuilt on edit")
    assert "api" in sc.status()["services"]


def test_removed_service_goes_away(workspace: Workspace, sidecar: SidecarFactory) -> None:
    workspace.add_service("web")
    port = workspace.add_service("old")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: http_get(port) == "v1", 20, "old serves")
    sc.settle()
    web_before = workspace.containers("web")

    workspace.remove_service("old")
    wait_for(lambda: not workspace.containers("old", all_=True), 30, "old's containers gone")
    sc.settle()
    assert workspace.containers("web") == web_before, "other services untouched"
    assert "old" not in sc.status()["services"]
    assert sc.events("service-removed", "old")


def test_broken_compose_file_keeps_project_running(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    port = workspace.add_service("web")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: http_get(port) == "v1", 20, "web serves")
    sc.settle()

    good = (workspace.root / "compose.yaml").read_text()
    workspace.write("compose.yaml", good + "\n  this is: [not valid\n")
    wait_for(lambda: sc.events("project-invalid"), 20, "a project-invalid event")
    time.sleep(0.5)
    assert http_get(port) == "v1"
    # compose cannot build from a broken file: the build fails, the old container serves on
    workspace.write("web/www/index.html", "v2\n")
    wait_for(lambda: sc.events("build-failed", "web"), 30, "the build to fail")
    assert http_get(port) == "v1"
    # fixing the compose file builds the change that is still pending
    workspace.write("compose.yaml", good)
    wait_for(lambda: http_get(port) == "v2", 30, "the pending edit to be built after the fix")
    sc.settle()
    assert sc.builds("web") == 2
