"""The dashboard against the real daemon: real dockerd, Redis and HTTP server, the page in
headless chromium with every host but the daemon's cut off. An edit shows up as a new build
and a new rotation on the page; the scale button brings a third instance that serves.

SIDECAR_DASHBOARD_SHOT=docs/dashboard.png writes the README's screenshot at the end."""

from __future__ import annotations

import os
import time

from playwright.sync_api import expect

from testkit.sidecar import converged, rotation_urls, served
from testkit.wait import free_port, wait_for
from testkit.workspace import Workspace
from tests.browser.conftest import OpenDashboard
from tests.integration.conftest import SidecarFactory

# Edit to the page showing the new build and a rotation of new instances only. Measured here
# (2 replicas, rollout parallelism 1, proxy_settle 2.5 s + drain 0.5 s): about 5 s; the
# bound leaves room for a loaded CI machine.
EDIT_TO_PAGE_S = 20.0
# The scale click to three instances serving on the page (measured: about 1.5 s).
SCALE_TO_PAGE_S = 20.0


def test_the_page_follows_an_edit_and_a_scale_of_the_real_daemon(
    workspace: Workspace, sidecar: SidecarFactory, open_dashboard: OpenDashboard
) -> None:
    served(workspace, "web", replicas=2)
    workspace.add_service("api", content="api v1")  # a plain service beside it
    sync_rule = {"action": "sync", "path": "./docs/www", "target": "/www"}
    workspace.add_service("docs", content="docs v1", develop={"watch": [sync_rule]})
    workspace.write_compose()
    port = free_port()
    sc = sidecar(http_listen=f"127.0.0.1:{port}", http_token="t")
    sc.start()
    wait_for(lambda: converged(sc, "web", 2), 30, "2 instances serving")
    sc.settle()

    dash = open_dashboard(f"http://127.0.0.1:{port}/")
    page = dash.page
    web = page.get_by_test_id("service-web")
    expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("project")).to_have_text(workspace.name)
    expect(web.locator('[data-testid="instance"][data-serving="1"]')).to_have_count(2)
    expect(page.get_by_test_id("service-api")).to_contain_text("plain")
    expect(page.get_by_test_id("banner")).to_be_hidden()
    old = set(rotation_urls(sc, "web"))
    builds = page.locator('[data-testid="job"][data-kind="build"][data-service="web"]')
    before = builds.count()

    t0 = time.monotonic()
    workspace.write("web/www/index.html", "v2\n")
    expect(builds).to_have_count(before + 1, timeout=EDIT_TO_PAGE_S * 1000)
    expect(builds.first).to_contain_text("ok")
    serving = web.locator('[data-testid="instance"][data-serving="1"]')
    expect(serving).to_have_count(2, timeout=EDIT_TO_PAGE_S * 1000)
    for url in old:  # the old instances left the rotation and then the page
        expect(web.locator(f'[data-url="{url}"]')).to_have_count(0, timeout=EDIT_TO_PAGE_S * 1000)
    edit_to_page = time.monotonic() - t0
    new = {str(serving.nth(i).get_attribute("data-url")) for i in range(2)}
    assert new == set(rotation_urls(sc, "web")), "the page shows the daemon's rotation"
    assert not new & old
    assert edit_to_page < EDIT_TO_PAGE_S
    expect(page.get_by_test_id("chart-web").locator('rect[data-kind="bar"]')).not_to_have_count(0)
    expect(web.get_by_test_id("state")).to_have_text("ok")

    # scale: the first command asks for the token once
    t1 = time.monotonic()
    web.get_by_test_id("scale-up").click()
    page.locator("#token-input").fill("t")
    page.locator("#token-save").click()
    expect(web.get_by_test_id("desired")).to_have_text("3", timeout=SCALE_TO_PAGE_S * 1000)
    expect(serving).to_have_count(3, timeout=SCALE_TO_PAGE_S * 1000)
    expect(web.get_by_test_id("serving")).to_have_text("3")
    scale_to_page = time.monotonic() - t1
    wait_for(lambda: converged(sc, "web", 3), 10, "3 instances serving in Redis")
    assert scale_to_page < SCALE_TO_PAGE_S
    expect(page.get_by_test_id("toast").last).to_contain_text("scale web to 3")
    print(f"edit to page {edit_to_page:.2f}s, scale to page {scale_to_page:.2f}s")

    # develop.watch: a sync is a row of its own; a broken build turns its card red
    workspace.write("docs/www/index.html", "docs v2\n")
    syncs = page.locator('[data-testid="job"][data-kind="sync"][data-service="docs"]')
    expect(syncs.first).to_contain_text("ok", timeout=10000)
    workspace.write(
        "api/Dockerfile", (workspace.root / "api/Dockerfile").read_text() + "COPY nothing /x\n"
    )
    api = page.get_by_test_id("service-api")
    expect(api.get_by_test_id("state")).to_have_text("failed", timeout=30000)
    expect(api.get_by_test_id("error")).to_contain_text("nothing")

    # The page asked for nothing beyond the daemon; the guard itself does catch a request
    # for another host (aborted in the browser: nothing leaves the machine).
    assert dash.blocked == [], dash.blocked
    page.evaluate("fetch('http://127.0.0.2:9/probe').catch(() => null)")
    wait_for(lambda: dash.blocked, 5, "the guard to catch a request for another host")
    assert dash.blocked == ["http://127.0.0.2:9/probe"]

    shot = os.environ.get("SIDECAR_DASHBOARD_SHOT")
    if shot:
        sc.settle()
        page.wait_for_timeout(1500)
        page.evaluate("document.getElementById('toasts').replaceChildren()")
        page.screenshot(path=shot, full_page=True)

    # the daemon stops: the stream drops and the status cannot be read, at once
    sc.stop()
    banner = page.get_by_test_id("banner")
    expect(banner).to_contain_text("the daemon does not answer", timeout=5000)
    expect(banner).to_have_attribute("data-kind", "daemon")
    expect(page.get_by_test_id("conn")).not_to_have_attribute("data-state", "live")
