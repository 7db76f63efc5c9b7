"""Editing sources rebuilds exactly the affected services, on a real dockerd and Redis."""

from __future__ import annotations

import os
import time

from testkit.http import http_get
from testkit.wait import wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory


def test_edit_serves_new_content(workspace: Workspace, sidecar: SidecarFactory) -> None:
    port = workspace.add_service("web", content="v1")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: http_get(port) == "v1", 20, "v1 served after start")
    sc.settle()

    workspace.write("web/www/index.html", "v2\n")
    wait_for(lambda: http_get(port) == "v2", 20, "v2 served after the edit")
    sc.settle()
    assert sc.builds("web") == 1
    status = sc.status()
    assert status["alive"] is True
    assert status["services"]["web"]["last_build_result"] == "ok"
    assert status["services"]["web"]["context"] == str(workspace.root / "web")


def test_touch_and_same_bytes_cause_no_build(workspace: Workspace, sidecar: SidecarFactory) -> None:
    workspace.add_service("web")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    sc.settle()
    for path in (workspace.root / "web").rglob("*"):
        os.utime(path)
    workspace.write("web/www/index.html", "v1\n")  # a save without edits
    time.sleep(1.0)
    sc.settle()
    assert sc.builds("web") == 0
    assert "content unchanged" in sc.log_tail(200)


def test_burst_builds_each_service_once(workspace: Workspace, sidecar: SidecarFactory) -> None:
    pa = workspace.add_service("a")
    pb = workspace.add_service("b")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    sc.settle()
    for i in range(150):
        workspace.write(f"a/www/f{i}.html", f"a{i}\n")
        workspace.write(f"b/www/f{i}.html", f"b{i}\n")
    wait_for(lambda: http_get(pa, "/f149.html") == "a149", 30, "a's burst served")
    wait_for(lambda: http_get(pb, "/f149.html") == "b149", 30, "b's burst served")
    sc.settle()
    assert (sc.builds("a"), sc.builds("b")) == (1, 1)


def test_edit_outside_contexts_does_nothing(workspace: Workspace, sidecar: SidecarFactory) -> None:
    workspace.add_service("web")
    workspace.write("docs/notes.md", "hello\n")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    sc.settle()
    workspace.write("docs/notes.md", "changed\n")
    workspace.write("README.txt", "new file\n")
    workspace.write("web/node_modules/pkg/index.js", "ignored\n")
    time.sleep(1.0)
    sc.settle()
    assert sc.builds("web") == 0


def test_shared_context_rebuilds_both(workspace: Workspace, sidecar: SidecarFactory) -> None:
    workspace.add_context("shared", content="s1")
    p1 = workspace.add_service("one", context="shared")
    p2 = workspace.add_service("two", context="shared")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    sc.settle()
    workspace.write("shared/www/index.html", "s2\n")
    wait_for(lambda: http_get(p1) == "s2" and http_get(p2) == "s2", 30, "both serve s2")
    sc.settle()
    assert (sc.builds("one"), sc.builds("two")) == (1, 1)


def test_broken_dockerfile_keeps_old_container(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    port = workspace.add_service("web", content="good")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: http_get(port) == "good", 20, "good version served")
    sc.settle()
    before = workspace.containers("web")

    workspace.write("web/Dockerfile", "FROM scratch\nRUN-THIS-IS-NOT-AN-INSTRUCTION\n")
    failed = wait_for(lambda: sc.events("build-failed", "web"), 30, "a build-failed event")
    assert failed[-1]["error"], "the failure carries the build log tail"
    sc.settle()
    assert http_get(port) == "good"
    assert workspace.containers("web") == before
    assert sc.status()["services"]["web"]["last_build_result"] == "failed"

    # the next good change recovers
    from testkit.workspace import DOCKERFILE

    workspace.write("web/Dockerfile", DOCKERFILE)
    workspace.write("web/www/index.html", "fixed\n")
    wait_for(lambda: http_get(port) == "fixed", 30, "fixed version served")


def test_change_while_stopped_is_built_at_startup(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    pa = workspace.add_service("a", content="a1")
    workspace.add_service("b", content="b1")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: http_get(pa) == "a1", 20, "a1 served")
    sc.settle()
    assert sc.stop() < 5

    workspace.write("a/www/index.html", "a2\n")
    os.utime(workspace.root / "b" / "www" / "index.html")  # touched only: not a change
    sc.start()
    wait_for(lambda: http_get(pa) == "a2", 30, "a2 served after restart")
    sc.settle()
    assert (sc.builds("a"), sc.builds("b")) == (1, 0)


def test_batch_waits_for_git_lock(workspace: Workspace, sidecar: SidecarFactory) -> None:
    port = workspace.add_service("web", content="v1")
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    sc.settle()
    lock = workspace.write(".git/index.lock", "")
    workspace.write("web/www/index.html", "half\n")
    workspace.write("web/www/other.html", "checkout\n")
    time.sleep(1.5)
    assert sc.builds("web") == 0, "no build while a git operation holds the index lock"
    workspace.write("web/www/index.html", "v2\n")
    lock.unlink()
    wait_for(lambda: http_get(port) == "v2", 30, "the batch to be built after the lock is gone")
    sc.settle()
    assert sc.builds("web") == 1
    assert http_get(port, "/other.html") == "checkout"
