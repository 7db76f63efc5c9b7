"""The HTTP API against a real daemon (`python -m sidecar run`), real Redis, real dockerd,
with real HTTP requests: status, the event stream, commands, the long-poll for versions,
metrics, health; then every kind of bad input, none of which may hurt the daemon."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from testkit.http_api import Answer, Api, EventStream, raw, status_of
from testkit.redis_server import RedisServer
from testkit.sidecar import Sidecar, converged, served
from testkit.wait import free_port, poll, wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory

TOKEN = "s3cret-test-token"
FAST = {"rollout": {"proxy_settle": 0, "drain": 0}, "max_replicas": 4}


def start(
    workspace: Workspace, sidecar: SidecarFactory, replicas: int = 1, **settings: str
) -> tuple[Sidecar, Api]:
    """One served service `web`, the daemon with its HTTP server on a free loopback port."""
    served(workspace, "web", replicas=replicas, **FAST)
    workspace.write_compose()
    port = free_port()
    sc = sidecar(http_listen=f"127.0.0.1:{port}", http_token=TOKEN, **settings)
    sc.start()
    api = Api(port, TOKEN)
    wait_for(lambda: converged(sc, "web", replicas), 30, f"{replicas} instance(s) serving")
    wait_for(api.up, 15, "the HTTP server")
    return sc, api


def image_id(sc: Sidecar, service: str) -> str:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", f"{sc.ws.name}-{service}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def has_value(api: Api, sample: str, value: float) -> bool:
    return api.metric(sample) == value


def without_heartbeat(state: dict[str, Any]) -> dict[str, Any]:
    """Status minus what changes with every beat."""
    return {k: v for k, v in state.items() if k not in ("heartbeat", "heartbeat_ttl_ms")}


# --- the endpoints ----------------------------------------------------------------------
def test_status_is_what_the_cli_prints(workspace: Workspace, sidecar: SidecarFactory) -> None:
    sc, api = start(workspace, sidecar, replicas=2)
    sc.settle()
    answer = api.get("/v1/status", token=None)
    assert answer.status == 200 and answer.headers["content-type"].startswith("application/json")
    over_http = answer.json()
    assert without_heartbeat(over_http) == without_heartbeat(sc.status())
    web = over_http["services"]["web"]
    serving = [i for i in web["instance_list"] if i["state"] == "serving"]
    assert sorted(i["url"] for i in serving) == sorted(web["rotation"]) and len(serving) == 2
    for inst in web["instance_list"]:
        assert set(inst) == {"id", "name", "url", "state", "since"}
        assert inst["name"].startswith(f"{sc.ws.name}-web-") and float(inst["since"]) > 0
    assert web["versions"][0]["version"] == 1
    assert web["versions"][0]["image"] == image_id(sc, "web")
    assert over_http["threads"]["http"] == "running" and over_http["alive"] is True
    # the token is never shown, nor logged
    assert TOKEN not in answer.body.decode()
    assert TOKEN not in sc.log.read_text()


def test_events_stream_a_build_and_resume_by_id(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc, api = start(workspace, sidecar)
    sc.settle()
    stream = EventStream(api.port)
    assert stream.status == 200
    assert stream.response_headers["content-type"] == "text/event-stream"
    workspace.write("web/www/index.html", "v2\n")
    seen = stream.until("job-finished", "web")
    stream.close()
    kinds = [m.event for m in seen if m.data.get("service") == "web"]
    for kind in ("build-started", "build-succeeded", "deployed", "job-finished"):
        assert kind in kinds, kinds
    # each message is an entry of the events stream: its id, its event, all its fields
    key = f"sidecar:{sc.ws.name}:events"
    entries: Any = sc.r.xrange(key, seen[0].id, seen[-1].id)
    assert [(m.id, m.data) for m in seen] == [(i, dict(f)) for i, f in entries]
    assert all(m.event == m.data["event"] for m in seen)

    # resumed after the first: the rest, in order, nothing twice
    resumed = EventStream(api.port, headers={"Last-Event-ID": seen[0].id})
    again = [resumed.next(5) for _ in seen[1:]]
    resumed.close()
    assert [m.id for m in again if m] == [m.id for m in seen[1:]]
    after = EventStream(api.port, query=f"?after={seen[-2].id}")
    last = after.next(5)
    after.close()
    assert last is not None and last.id == seen[-1].id
    # ?backlog=N: the newest N first
    latest: Any = sc.r.xrevrange(key, count=3)
    newest = [str(i) for i, _ in reversed(latest)]
    back = EventStream(api.port, query="?backlog=3")
    got = [back.next(5) for _ in range(3)]
    back.close()
    assert [m.id for m in got if m] == newest
    assert api.get("/v1/events", headers={"Last-Event-ID": "not-an-id"}).status == 400


def test_post_scale_answers_with_the_result_and_three_run(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc, api = start(workspace, sidecar)
    cmd = {"action": "scale", "service": "web", "replicas": 3, "id": "http-scale-1"}
    answer = api.post("/v1/commands", cmd)
    assert answer.status == 200, answer.body
    doc = answer.json()
    assert doc["ok"] is True and doc["id"] == "http-scale-1" and doc["action"] == "scale"
    assert doc["message"] == "3/3 serving"
    wait_for(lambda: converged(sc, "web", 3), 10, "three instances serving")
    assert api.get("/v1/commands/http-scale-1").json() == doc
    # the stream's validation, the stream's result document
    bad = api.post("/v1/commands", {"action": "scale", "service": "web", "replicas": -1})
    assert bad.status == 200 and bad.json()["ok"] is False
    assert "non-negative whole number" in bad.json()["message"]
    other = api.post("/v1/commands", {"action": "scale", "service": "nosuch", "replicas": 2})
    assert other.json()["ok"] is False and "unknown service" in other.json()["message"]
    # a repeated id changes nothing: its first result stands
    again = api.post("/v1/commands", {**cmd, "replicas": 1})
    assert again.status == 200 and again.json() == doc
    assert converged(sc, "web", 3)
    assert api.get("/v1/commands/no-such-id").status == 404


def test_a_slow_command_is_202_then_its_result(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc, api = start(workspace, sidecar, http_command_wait_s="0")
    answer = api.post("/v1/commands", {"action": "scale", "service": "web", "replicas": 2})
    assert answer.status == 202
    pending = answer.json()
    assert pending["status"] == "pending" and len(pending["id"]) == 32

    def result() -> dict[str, Any]:
        answer = api.get(f"/v1/commands/{pending['id']}")
        return dict(answer.json()) if answer.status == 200 else {}

    doc = wait_for(result, 30, "the command's result")
    assert doc["ok"] is True and doc["id"] == pending["id"]
    assert converged(sc, "web", 2)


def test_watch_answers_after_an_edit_with_a_higher_version(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc, api = start(workspace, sidecar)
    sc.settle()
    now = api.get("/v1/watch?service=web&after=0&timeout=5")
    assert now.status == 200
    version = now.json()["version"]
    t0 = time.monotonic()
    quiet = api.get(f"/v1/watch?service=web&after={version}&timeout=1")
    assert quiet.status == 204 and quiet.body == b""
    assert 0.9 <= time.monotonic() - t0 < 5

    answers: list[Answer] = []
    waiter = threading.Thread(
        target=lambda: answers.append(
            api.get(f"/v1/watch?service=web&after={version}&timeout=60", timeout=90)
        )
    )
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive(), "the long-poll answered before anything was deployed"
    deployed = len(sc.events("deployed", "web"))
    workspace.write("web/www/index.html", "v2\n")
    waiter.join(90)
    assert answers and answers[0].status == 200, answers
    record = answers[0].json()
    assert record["service"] == "web" and record["version"] == version + 1
    assert record["image"] == image_id(sc, "web")
    assert record["reason"].startswith("1 files changed")
    assert len(sc.events("deployed", "web")) > deployed  # answered for that deploy
    assert api.get("/v1/watch?service=nosuch&timeout=1").status == 404
    assert api.get("/v1/watch?service=web&after=soon").status == 400


def test_metrics_count_a_build(workspace: Workspace, sidecar: SidecarFactory) -> None:
    sc, api = start(workspace, sidecar)
    sc.settle()
    builds = 'sidecar_builds_total{result="ok",service="web"}'
    before = api.metric(builds) or 0.0
    jobs = 'sidecar_jobs_total{job="build",result="ok",service="web"}'
    jobs_before = api.metric(jobs) or 0.0  # the start-up built the first image
    answer = api.get("/metrics")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain")
    workspace.write("web/www/index.html", "v2\n")
    wait_for(lambda: (api.metric(builds) or 0.0) == before + 1, 60, "the build counted")
    assert (api.metric('sidecar_build_duration_seconds_count{service="web"}') or 0) >= 1
    wait_for(partial(has_value, api, jobs, jobs_before + 1), 30, "the job counted")
    assert (api.metric('sidecar_rollouts_total{result="ok",service="web"}') or 0) >= 1
    assert (api.metric("sidecar_docker_event_lag_seconds_count") or 0) >= 1
    for sample, value in [
        ('sidecar_thread_alive{thread="http"}', 1.0),
        ('sidecar_thread_alive{thread="commands"}', 1.0),
        ("sidecar_redis_up", 1.0),
        ("sidecar_docker_up", 1.0),
        ('sidecar_rotation_size{service="web"}', 1.0),
        ('sidecar_instances{service="web",state="serving"}', 1.0),
        ("sidecar_job_queue_depth", 0.0),
    ]:
        wait_for(partial(has_value, api, sample, value), 10, sample)
    health = api.get("/healthz")
    assert health.status == 200 and health.json() == {"healthy": True, "message": "healthy"}


def test_access_off_loopback_and_without_a_token(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    served(workspace, "web", replicas=1, **FAST)
    workspace.write_compose()
    port = free_port()
    # every interface: not loopback, so every API request needs the token (the test still
    # only talks to 127.0.0.1)
    sc = sidecar(http_listen=f"0.0.0.0:{port}", http_token=TOKEN)
    sc.start()
    api = Api(port, TOKEN)
    wait_for(api.up, 15, "the HTTP server")  # binds on its own thread, soon after `ready`
    for path in ("/v1/status", "/v1/events", "/v1/watch?service=web", "/metrics", "/healthz"):
        for token in (None, "wrong", TOKEN + "x"):
            answer = api.get(path, token=token)
            assert answer.status == 401, (path, token, answer.status)
            assert answer.body == b'{"error": "unauthorized"}'
            assert answer.headers["www-authenticate"] == "Bearer"
    assert api.get("/healthz").status == 200
    assert api.get("/", token=None).status == 200  # the page holds no data
    assert TOKEN not in sc.log.read_text()
    sc.stop()

    port = free_port()
    sc = sidecar(http_listen=f"127.0.0.1:{port}")  # no token configured
    sc.start()
    api = Api(port, None)
    wait_for(api.up, 15, "the HTTP server")
    refused = api.post("/v1/commands", {"action": "pause"}, token="anything")
    assert refused.status == 403 and refused.json() == {"error": "no http_token configured"}
    assert api.get("/v1/status").status == 200
    rebinding = api.get("/v1/status", headers={"Host": f"evil.example:{port}"})
    assert rebinding.status == 403 and rebinding.json() == {"error": "host not allowed"}
    assert api.get("/v1/status", headers={"Host": f"localhost:{port}"}).status == 200


def test_a_taken_address_is_retried_and_reported(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    served(workspace, "web", replicas=1, **FAST)
    workspace.write_compose()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    sc = sidecar(http_listen=f"127.0.0.1:{port}", http_token=TOKEN)
    try:
        sc.start()

        def http_thread() -> str:
            return str(sc.status().get("threads", {}).get("http", ""))

        wait_for(lambda: http_thread().startswith("restarting:"), 30, "the http thread retried")
        assert "in use" in http_thread() or "Errno 98" in http_thread(), http_thread()
        check = subprocess.run(
            [sys.executable, "-m", "sidecar", "check"],
            env=sc.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 1 and "thread http" in check.stdout
        assert converged(sc, "web", 1)  # the rest of the daemon does its work
    finally:
        squatter.close()
    api = Api(port, TOKEN)
    wait_for(api.up, 30, "the server once the address is free")
    wait_for(lambda: http_thread() == "running", 15, "the http thread running")


# --- bad input: one daemon for all of it; after each, it must be unharmed -----------------
@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, docker_ready: None
) -> Iterator[tuple[Sidecar, Api]]:
    root: Path = tmp_path_factory.mktemp("http")
    ws = Workspace(root / "ws", f"scthttpbad{uuid.uuid4().hex[:6]}")
    served(ws, "web", replicas=1, **FAST)
    ws.write_compose()
    port = free_port()
    sc = Sidecar(
        ws,
        redis_server.url,
        root / "sidecar.log",
        http_listen=f"127.0.0.1:{port}",
        http_token=TOKEN,
        http_read_timeout_s="2",
        http_sse_max_clients="4",
    )
    api = Api(port, TOKEN)
    try:
        sc.start()
        wait_for(lambda: converged(sc, "web", 1), 30, "web serving")
        wait_for(api.up, 15, "the HTTP server")
        yield sc, api
    finally:
        sc.stop()
        sc.cleanup_keys()
        ws.cleanup()


def commands_len(sc: Sidecar) -> int:
    return int(sc.r.xlen(f"sidecar:{sc.ws.name}:commands"))


def assert_unharmed(sc: Sidecar, api: Api) -> None:
    """The daemon still answers commands, beats and serves, and its threads all run."""
    for action in ("pause", "resume"):
        answer = api.post("/v1/commands", {"action": action, "service": "web"})
        assert answer.status == 200 and answer.json()["ok"] is True, answer.body
    health = api.get("/healthz")
    assert health.status == 200, health.body
    assert sc.proc is not None and sc.proc.poll() is None
    assert converged(sc, "web", 1)


def test_oversized_bodies_are_refused(shared: tuple[Sidecar, Api]) -> None:
    sc, api = shared
    before = commands_len(sc)
    big = json.dumps({"action": "pause", "pad": "x" * 70_000}).encode()
    answer = api.post("/v1/commands", big)
    assert answer.status == 413 and answer.json() == {"error": "request body too large"}
    # no Content-Length to go by: chunks past the cap
    chunk = b"x" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(12)) + b"0\r\n\r\n"
    head = (
        f"POST /v1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    ).encode()
    assert status_of(raw(api.port, head + body)) == 413
    assert commands_len(sc) == before
    assert_unharmed(sc, api)


@pytest.mark.parametrize("body", [b"{", b"", b"\xff\xfe", b"[1, 2]", b'"scale"', b"null"])
def test_malformed_json_is_400_and_reaches_no_stream(
    shared: tuple[Sidecar, Api], body: bytes
) -> None:
    sc, api = shared
    before = commands_len(sc)
    answer = api.post("/v1/commands", body)
    assert answer.status == 400 and set(answer.json()) == {"error"}
    assert commands_len(sc) == before
    assert_unharmed(sc, api)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN]
)
def test_wrong_or_missing_token_is_401_without_detail(
    shared: tuple[Sidecar, Api], authorization: str | None
) -> None:
    sc, api = shared
    before = commands_len(sc)
    headers = {"Authorization": authorization} if authorization else {}
    answer = api.post("/v1/commands", {"action": "stop"}, token=None, headers=headers)
    assert answer.status == 401 and answer.body == b'{"error": "unauthorized"}'
    assert commands_len(sc) == before
    assert_unharmed(sc, api)


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        ("GET /nope HTTP/1.1", 404),
        ("GET /v1 HTTP/1.1", 404),
        ("GET /v1/status/extra HTTP/1.1", 404),
        ("GET /static/ HTTP/1.1", 404),
        ("GET /static/../../../../etc/passwd HTTP/1.1", 404),
        ("GET /static/%2e%2e/%2e%2e/%2e%2e/etc/passwd HTTP/1.1", 404),
        ("GET /static/..%2f..%2f..%2fetc%2fpasswd HTTP/1.1", 404),
        ("GET /static/.hidden HTTP/1.1", 404),
        ("DELETE /v1/status HTTP/1.1", 405),
        ("PUT /v1/commands HTTP/1.1", 405),
        ("POST /v1/status HTTP/1.1", 405),
        ("GET /v1/commands HTTP/1.1", 405),
    ],
)
def test_unknown_paths_and_methods(
    shared: tuple[Sidecar, Api], request_line: str, status: int
) -> None:
    sc, api = shared
    head = f"{request_line}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
    answer = raw(api.port, (head + "Content-Length: 0\r\nConnection: close\r\n\r\n").encode())
    assert status_of(answer) == status, answer[:300]
    body = answer.partition(b"\r\n\r\n")[2]
    assert json.loads(body) in ({"error": "not found"}, {"error": "method not allowed"})
    assert b"root:" not in answer
    assert_unharmed(sc, api)


def test_slow_clients_do_not_block_others(shared: tuple[Sidecar, Api]) -> None:
    sc, api = shared
    before = commands_len(sc)
    # headers that never end, sent a byte at a time
    slow = [socket.create_connection(("127.0.0.1", api.port), timeout=10) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    # a body that never comes
    stalled = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    stalled.sendall(
        (
            f"POST /v1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            'Content-Type: application/json\r\nContent-Length: 60\r\n\r\n{"action": '
        ).encode()
    )
    t0 = time.monotonic()
    for _ in range(10):
        start = time.monotonic()
        assert api.get("/v1/status").status == 200
        assert time.monotonic() - start < 1.0
        for sock in slow:
            sock.sendall(b"x")
    # the read timeout (2 s here) drops them; the stalled body gets 408
    assert status_of(stalled.recv(4096)) == 408
    for sock in slow:
        sock.settimeout(max(0.1, t0 + 8 - time.monotonic()))
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
        sock.close()
    stalled.close()
    assert time.monotonic() - t0 < 8
    assert commands_len(sc) == before
    assert_unharmed(sc, api)


def test_event_streams_are_capped(shared: tuple[Sidecar, Api]) -> None:
    sc, api = shared
    streams = [EventStream(api.port) for _ in range(4)]
    assert [s.status for s in streams] == [200] * 4
    extra = api.get("/v1/events")
    assert extra.status == 503 and extra.json()["error"] == "too many event streams"
    streams.pop().close()
    wait_for(lambda: api.metric("sidecar_http_event_streams") == 3, 10, "the slot freed")
    again = EventStream(api.port)
    assert again.status == 200
    for s in [*streams, again]:
        s.close()
    wait_for(lambda: api.metric("sidecar_http_event_streams") == 0, 10, "every slot freed")
    assert_unharmed(sc, api)


def test_disconnects_mid_stream_leave_nothing_behind(shared: tuple[Sidecar, Api]) -> None:
    sc, api = shared
    for _ in range(3):
        streams = [EventStream(api.port, query="?backlog=50") for _ in range(4)]
        assert all(s.status == 200 for s in streams)
        assert api.post("/v1/commands", {"action": "pause", "service": "web"}).status == 200
        for s in streams:
            assert s.next(10) is not None  # mid-stream
            s.close(reset=True)
        wait_for(lambda: api.metric("sidecar_http_event_streams") == 0, 10, "slots freed")
    # a command whose client hangs up right after sending it is still carried out
    ids = [f"gone-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    for cid in ids:
        body = json.dumps({"action": "resume", "service": "web", "id": cid}).encode()
        head = (
            f"POST /v1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
            sock.sendall(head + body)
    for cid in ids:
        key = f"sidecar:{sc.ws.name}:result:{cid}"
        assert poll(partial(lambda k: sc.r.exists(k) == 1, key), 15), cid
    assert_unharmed(sc, api)


def test_commands_from_many_clients_at_once_are_all_answered(
    shared: tuple[Sidecar, Api],
) -> None:
    sc, api = shared
    ids = [f"many-{n}-{uuid.uuid4().hex[:6]}" for n in range(24)]
    answers: dict[str, Answer] = {}

    def send(cid: str, action: str) -> None:
        answers[cid] = api.post("/v1/commands", {"action": action, "service": "web", "id": cid})

    threads = [
        threading.Thread(target=send, args=(cid, "pause" if n % 2 else "resume"))
        for n, cid in enumerate(ids)
    ]
    streams = [EventStream(api.port) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in streams:
        s.close()
    assert sorted(answers) == sorted(ids)
    assert all(a.status == 200 and a.json()["ok"] for a in answers.values())
    assert_unharmed(sc, api)
