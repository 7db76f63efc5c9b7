"""The dashboard page in a real browser against a stand-in of the daemon's API (stub.py): what
it shows, what it sends, and how it behaves when the token is refused, the event stream drops
or the daemon is not alive. The same page against the real daemon: test_live.py."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.browser.conftest import Dashboard, OpenDashboard
from tests.browser.stub import StubDaemon, served_service, status_doc

U1, U2, U3 = "http://172.18.0.2:8080", "http://172.18.0.3:8080", "http://172.18.0.4:8080"


def shop(stub: StubDaemon, **web: str) -> None:
    stub.status = status_doc(
        "shop",
        {
            "web": served_service("shop", "web", [U1, U2, U3], serving=2, **web),
            "db": {"context": "", "image": "postgres:16", "files": "0", "rotation": []},
            "worker": {
                "context": "worker",
                "image": "shop-worker",
                "files": "12",
                "rotation": [],
                "last_build_at": f"{time.time() - 5:.3f}",
                "last_build_duration": "1.200",
                "last_build_result": "failed",
                "last_build_reason": "2 files changed",
                "last_build_error": "Step 3/4 : RUN make\nmake: *** [all] Error 2",
            },
        },
    )


def open_shop(
    stub: StubDaemon, open_dashboard: OpenDashboard, token: str | None = None
) -> Dashboard:
    """The page on the stub's `shop` project (what the test set on the stub before stays)."""
    shop(stub)
    return open_dashboard(stub.url, token=token)


def test_services_show_state_counts_and_which_instances_serve(
    stub: StubDaemon, open_dashboard: OpenDashboard
) -> None:
    dash = open_shop(stub, open_dashboard)
    page = dash.page
    web = page.get_by_test_id("service-web")
    expect(web.get_by_test_id("state")).to_have_text("ok")
    expect(web.get_by_test_id("desired")).to_have_text("3")
    expect(web.get_by_test_id("running")).to_have_text("3")
    expect(web.get_by_test_id("serving")).to_have_text("2")
    chips = web.get_by_test_id("instance")
    expect(chips).to_have_count(3)
    expect(web.locator('[data-testid="instance"][data-serving="1"]')).to_have_count(2)
    expect(web.locator(f'[data-url="{U3}"]')).to_have_attribute("data-state", "starting")
    expect(chips.first).to_contain_text("web-1")  # the project prefix is left out
    expect(web.get_by_test_id("last-build")).to_contain_text("ok in 0.41 s")
    expect(web.get_by_test_id("last-deploy")).to_contain_text("v2")  # the newest version
    expect(web.get_by_test_id("last-deploy")).to_contain_text("1 files changed")
    worker = page.get_by_test_id("service-worker")
    expect(worker.get_by_test_id("state")).to_have_text("failed")
    expect(worker.get_by_test_id("error")).to_contain_text("Error 2")
    expect(worker.get_by_test_id("rebuild")).to_be_visible()
    db = page.get_by_test_id("service-db")
    expect(db).to_contain_text("image only")
    expect(db.get_by_test_id("rebuild")).to_have_count(0)
    expect(page.get_by_test_id("project")).to_have_text("shop")
    expect(page.get_by_test_id("daemon")).to_contain_text("pid 4242 on devbox")
    expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("banner")).to_be_hidden()
    assert dash.blocked == []


def test_events_go_to_the_log_chart_and_jobs_and_a_burst_costs_one_status_read(
    stub: StubDaemon, open_dashboard: OpenDashboard
) -> None:
    t0 = time.time() - 20
    # history the page replays from the backlog: one earlier build of web
    stub.event("build-started", "web", at=t0, reason="1 files changed")
    stub.event("build-succeeded", "web", at=t0 + 0.3, seconds="0.300")
    stub.event("deployed", "web", at=t0 + 2.9, seconds="2.600")
    stub.event("job-finished", "web", at=t0 + 3.0, job="build", result="ok")
    dash = open_shop(stub, open_dashboard)
    page = dash.page
    expect(page.get_by_test_id("log").locator("li")).to_have_count(4)
    expect(page.get_by_test_id("chart-web").locator('rect[data-kind="bar"]')).to_have_count(1)
    jobs = page.get_by_test_id("job")
    expect(jobs).to_have_count(1)
    expect(jobs.first).to_contain_text("0.30 s build, 2.90 s to deployed")
    expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "live")
    page.wait_for_timeout(500)  # the first status reads are done
    reads = len(stub.requests("/v1/status"))

    stub.event("build-started", "web", reason="2 files changed")
    web = page.get_by_test_id("service-web")
    expect(web.get_by_test_id("state")).to_have_text("building")
    stub.event("built", "web", seconds="0.250")  # the image is ready, the rollout begins
    expect(web.get_by_test_id("state")).to_have_text("deploying")
    # a rollout's burst of events: the status is read once or twice, not per event
    stub.status["services"]["web"]["rotation"] = [U1, U2, U3]
    for _ in range(10):
        stub.event("converged", "web", reason="scale", result="ok")
    stub.event("build-succeeded", "web", seconds="0.250")
    stub.event("deployed", "web", seconds="1.000")
    stub.event("job-finished", "web", job="build", result="ok")
    expect(web.get_by_test_id("state")).to_have_text("ok")
    expect(web.get_by_test_id("serving")).to_have_text("3")
    expect(page.get_by_test_id("chart-web").locator('rect[data-kind="bar"]')).to_have_count(2)
    expect(page.get_by_test_id("log").locator("li")).to_have_count(19)
    page.wait_for_timeout(600)
    burst_reads = len(stub.requests("/v1/status")) - reads
    assert 1 <= burst_reads <= 6, f"{burst_reads} status reads for a burst of 15 events"

    stub.event("sync-started", "web", files="2")
    stub.event("synced", "web", files="2", seconds="0.040", containers="3")
    expect(jobs.first).to_have_attribute("data-kind", "sync")
    expect(jobs.first).to_contain_text("0.04 s")
    assert dash.blocked == []


def test_commands_ask_for_the_token_once_and_again_after_a_401(
    stub: StubDaemon, open_dashboard: OpenDashboard
) -> None:
    dash = open_shop(stub, open_dashboard)
    page = dash.page
    web = page.get_by_test_id("service-web")
    web.get_by_test_id("rebuild").click()
    dialog = page.get_by_test_id("token-dialog")
    expect(dialog).to_be_visible()
    page.locator("#token-input").fill("wrong")
    page.locator("#token-save").click()
    # the daemon answers 401: the page asks again, and retries with the new token
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("refused")
    page.locator("#token-input").fill("t")
    page.locator("#token-save").click()
    expect(page.get_by_test_id("toast").last).to_contain_text("rebuild web: rebuild done")
    posts = stub.requests("/v1/commands", "POST")
    assert [p.headers.get("authorization") for p in posts] == ["Bearer wrong", "Bearer t"]
    assert posts[-1].body == {"action": "rebuild", "service": "web"}

    # kept for the tab: the next command, and after a reload, nothing is asked
    web.get_by_test_id("redeploy").click()
    expect(page.get_by_test_id("toast").last).to_contain_text("redeploy web")
    page.reload()
    page.get_by_test_id("service-web").get_by_test_id("scale-up").click()
    expect(page.get_by_test_id("toast").last).to_contain_text("scale web to 4")
    expect(dialog).to_be_hidden()
    posts = stub.requests("/v1/commands", "POST")
    assert posts[-1].body == {"action": "scale", "service": "web", "replicas": "4"}
    assert posts[-1].headers.get("authorization") == "Bearer t"
    assert len(posts) == 4
    # reads carry the token too once the user gave one
    assert stub.requests("/v1/status")[-1].headers.get("authorization") == "Bearer t"


def test_a_command_still_running_and_a_refused_one_say_so(
    stub: StubDaemon, open_dashboard: OpenDashboard
) -> None:
    stub.reply = lambda body: (
        (202, {"id": "c9", "status": "pending"})
        if body["action"] == "rebuild"
        else (200, {"id": "c10", "ok": False, "message": "replicas 0 is below min_replicas 1"})
    )
    page = open_shop(stub, open_dashboard, token="t").page
    web = page.get_by_test_id("service-web")
    web.get_by_test_id("rebuild").click()
    expect(page.get_by_test_id("toast").last).to_contain_text("still running (command c9)")
    web.get_by_test_id("scale-down").click()
    bad = page.locator(".toast.bad")
    expect(bad).to_contain_text("below min_replicas")


def test_reads_that_need_the_token_ask_for_it(
    stub: StubDaemon, open_dashboard: OpenDashboard
) -> None:
    """Beyond loopback every endpoint needs the token: the page asks before it can show
    anything, then reads the status and the stream with it."""
    stub.token_for_reads = True
    page = open_shop(stub, open_dashboard).page
    expect(page.get_by_test_id("token-dialog")).to_be_visible()
    page.locator("#token-input").fill("t")
    page.locator("#token-save").click()
    expect(page.get_by_test_id("service-web").get_by_test_id("state")).to_have_text("ok")
    expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "live")
    stub.event("build-started", "web", reason="x")
    expect(page.get_by_test_id("log").locator("li")).to_have_count(1)


def test_a_dropped_stream_shows_a_banner_and_resumes_after_the_last_event(
    stub: StubDaemon, open_dashboard: OpenDashboard
) -> None:
    page = open_shop(stub, open_dashboard).page
    first = stub.event("build-started", "web", reason="one")
    log = page.get_by_test_id("log").locator("li")
    expect(log).to_have_count(1)
    stub.refuse_streams = True
    stub.drop_streams()
    banner = page.get_by_test_id("banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Live events lost")
    expect(banner).to_contain_text(f"resuming after event {first}")
    expect(page.get_by_test_id("conn")).not_to_have_attribute("data-state", "live")
    # events written while the page is away arrive once it is back, exactly once
    second = stub.event("build-succeeded", "web", seconds="0.2")
    stub.refuse_streams = False
    expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "live", timeout=15000)
    expect(banner).to_be_hidden()
    expect(log).to_have_count(2)
    expect(log.last).to_have_attribute("data-kind", "build-succeeded")
    streams = stub.requests("/v1/events")
    assert streams[-1].headers.get("last-event-id") == first
    assert "backlog" in streams[0].query
    assert "backlog" not in streams[-1].query  # a resume replays only what was missed
    stub.event("deployed", "web", seconds="1.0")
    expect(log).to_have_count(3)
    assert second != first


def test_a_stream_gone_silent_is_reconnected(
    stub: StubDaemon, open_dashboard: OpenDashboard
) -> None:
    """A half-open connection (a laptop's sleep, a proxy) never ends by itself: after three
    missed keepalives (45 s; 1.5 s here) the page gives up on it and resumes by id."""
    shop(stub)
    stub.silent_streams = True
    page = open_dashboard(stub.url, init="window.sidecarStallMs = 1500").page
    banner = page.get_by_test_id("banner")
    expect(banner).to_contain_text("went silent", timeout=5000)
    stub.silent_streams = False
    # an event written while no stream worked: the page, having seen none, asks for the
    # backlog again and gets it
    stub.event("build-started", "web", reason="one")
    expect(page.get_by_test_id("conn")).to_have_attribute("data-state", "live", timeout=10000)
    expect(page.get_by_test_id("log").locator("li")).to_have_count(1)


def test_a_daemon_that_is_not_alive_gets_a_banner(
    stub: StubDaemon, open_dashboard: OpenDashboard
) -> None:
    page = open_shop(stub, open_dashboard).page
    banner = page.get_by_test_id("banner")
    expect(page.get_by_test_id("service-web")).to_be_visible()
    expect(banner).to_be_hidden()
    stub.status["alive"] = False
    stub.status["heartbeat"]["threads"]["docker-events"] = "restarting: EOF"
    stub.status["threads"] = stub.status["heartbeat"]["threads"]
    stub.event("docker-disconnected", error="EOF")
    expect(banner).to_contain_text("thread docker-events restarting: EOF")
    expect(banner).to_have_attribute("data-kind", "daemon")
    stub.status = status_doc("shop", stub.status["services"], alive=False)
    stub.event("stopped")
    expect(banner).to_contain_text("The daemon is not running")
    expect(page.get_by_test_id("daemon")).to_have_text("daemon not running")


def test_pause_and_resume_show_on_the_cards(
    stub: StubDaemon, open_dashboard: OpenDashboard
) -> None:
    page = open_shop(stub, open_dashboard).page
    web, db = page.get_by_test_id("service-web"), page.get_by_test_id("service-db")
    stub.event("command-ok", "web", command="c1", action="pause", message="paused web")
    expect(web.get_by_test_id("state")).to_have_text("paused")
    expect(db.get_by_test_id("state")).to_have_text("ok")
    stub.event("command-ok", "", command="c2", action="pause", message="paused all")
    expect(db.get_by_test_id("state")).to_have_text("paused")
    stub.event("command-ok", "db", command="c3", action="resume", message="resumed db")
    expect(db.get_by_test_id("state")).to_have_text("ok")
    expect(web.get_by_test_id("state")).to_have_text("paused")
    # a status that carries the paused set wins
    stub.status["paused"] = []
    stub.event("resynced", reason="periodic")
    expect(web.get_by_test_id("state")).to_have_text("ok")
