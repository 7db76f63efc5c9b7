"""A stand-in for the daemon's HTTP API, for the dashboard's own browser tests: the static
page, `GET /v1/status` from a dict the test changes, `GET /v1/events` as Server-Sent Events
from a list the test appends to (backlog, Last-Event-ID, dropped on demand) and
`POST /v1/commands` recorded, answered as the test says. Everything it receives is kept, so
a test can assert what the page sent (headers included). The real server is tested with the
real daemon (test_live.py); this one makes the page's corner cases cheap to reach: a
refused token, a stream that drops, a daemon that is not alive."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

STATIC = Path(__file__).resolve().parents[2] / "sidecar" / "adapters" / "web" / "static"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png"}

Reply = tuple[int, dict[str, Any]]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    query: str = ""
    body: dict[str, Any] | None = None


@dataclass
class StubDaemon:
    token: str = "t"
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    # what POST /v1/commands answers (after the token check); default: 200, ok
    reply: Callable[[dict[str, Any]], Reply] | None = None
    token_for_reads: bool = False  # as the real server does beyond loopback

    def __post_init__(self) -> None:
        self.cond = threading.Condition()
        self.generation = 0  # bumped by drop_streams(): open streams end
        self.refuse_streams = False
        self.silent_streams = False  # accepted, then never a byte (a half-open connection)
        self._seq = 0
        self.server = _Server(self)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.drop_streams()
        self.server.shutdown()
        self.server.server_close()

    # --- what the test changes -----------------------------------------------------------
    def event(self, kind: str, service: str = "", at: float | None = None, **fields: str) -> str:
        with self.cond:
            self._seq += 1
            eid = f"{int(time.time() * 1000)}-{self._seq}"
            stamp = f"{time.time() if at is None else at:.3f}"
            self.events.append((eid, {"event": kind, "service": service, "at": stamp, **fields}))
            self.cond.notify_all()
            return eid

    def drop_streams(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def requests(self, path: str, method: str = "GET") -> list[Seen]:
        return [s for s in list(self.seen) if s.method == method and s.path == path]

    # --- answers -------------------------------------------------------------------------
    def authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("authorization") == f"Bearer {self.token}"

    def command(self, body: dict[str, Any]) -> Reply:
        if self.reply:
            return self.reply(body)
        doc = {
            "id": f"c{len(self.requests('/v1/commands', 'POST'))}",
            "ok": True,
            "action": body.get("action", ""),
            "service": body.get("service", ""),
            "message": f"{body.get('action')} done",
            "at": time.time(),
        }
        return 200, doc

    def backlog(self, query: dict[str, list[str]], last_id: str) -> tuple[int, int]:
        """(index of the first event to send, its generation) for a new stream."""
        with self.cond:
            if last_id:
                ids = [eid for eid, _ in self.events]
                start = ids.index(last_id) + 1 if last_id in ids else 0
            else:
                n = int(query.get("backlog", ["0"])[0])
                start = max(0, len(self.events) - n)
            return start, self.generation


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # open event streams never hold up the test's end

    def __init__(self, stub: StubDaemon) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stub = stub


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test's output is for the test

    @property
    def stub(self) -> StubDaemon:
        return self.server.stub

    def _record(self, body: dict[str, Any] | None = None) -> Seen:
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        seen = Seen(self.command, parts.path, headers, parts.query, body)
        self.stub.seen.append(seen)
        return seen

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, doc: dict[str, Any]) -> None:
        self._send(code, json.dumps(doc).encode(), "application/json")

    def do_GET(self) -> None:
        seen = self._record()
        locked = seen.path.startswith("/v1/") and self.stub.token_for_reads
        if locked and not self.stub.authorized(seen.headers):
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "unauthorized"})
        elif seen.path == "/v1/status":
            self._json(200, self.stub.status)
        elif seen.path == "/v1/events":
            self._events(parse_qs(seen.query), seen.headers.get("last-event-id", ""))
        elif seen.path == "/" or seen.path.startswith("/static/"):
            self._static("index.html" if seen.path == "/" else seen.path.removeprefix("/static/"))
        else:
            self._json(404, {"error": "not found"})

    def _static(self, name: str) -> None:
        path = STATIC / name
        if "/" in name or not path.is_file():
            self._json(404, {"error": "not found"})
        else:
            self._send(200, path.read_bytes(), TYPES.get(path.suffix, "text/plain"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        seen = self._record(body)
        if seen.path != "/v1/commands":
            self._json(404, {"error": "not found"})
        elif not self.stub.authorized(seen.headers):
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "unauthorized"})
        else:
            self._json(*self.stub.command(body))

    def _events(self, query: dict[str, list[str]], last_id: str) -> None:
        stub = self.stub
        if stub.refuse_streams:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "refused"})
            return
        nxt, generation = stub.backlog(query, last_id)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(b": hello\n\n")
        self.wfile.flush()
        if stub.silent_streams:
            with stub.cond:
                stub.cond.wait_for(lambda: stub.generation != generation)
            return
        while True:
            with stub.cond:
                while nxt >= len(stub.events) and stub.generation == generation:
                    stub.cond.wait(0.5)
                if stub.generation != generation:
                    return  # dropped: the connection closes
                batch = stub.events[nxt:]
            nxt += len(batch)
            for eid, fields in batch:
                msg = f"id: {eid}\nevent: {fields['event']}\ndata: {json.dumps(fields)}\n\n"
                self.wfile.write(msg.encode())
            self.wfile.flush()


def served_service(
    project: str, name: str, urls: list[str], serving: int, **info: str
) -> dict[str, Any]:
    """A served service as `collect` publishes it: `urls` instances, the first `serving` in
    the rotation, the rest starting."""
    instance_list = [
        {
            "id": f"{name}{i}",
            "name": f"{project}-{name}-{i + 1}",
            "url": url,
            "state": "serving" if i < serving else "starting",
            "since": f"{time.time() - 60:.3f}",
        }
        for i, url in enumerate(urls)
    ]
    states = [i["state"] for i in instance_list]
    return {
        "context": name,
        "image": f"{project}-{name}",
        "served": "1",
        "replicas": str(len(urls)),
        "desired": str(len(urls)),
        "files": "3",
        "last_build_at": f"{time.time() - 30:.3f}",
        "last_build_duration": "0.412",
        "last_build_result": "ok",
        "last_build_reason": "1 files changed",
        "last_build_error": "",
        "rotation": urls[:serving],
        "instances": {s: states.count(s) for s in sorted(set(states))},
        "instance_list": instance_list,
        "versions": [  # newest first, as collect() lists them
            {
                "service": name,
                "version": 2,
                "image": "sha256:bb",
                "at": time.time() - 28,
                "reason": "1 files changed",
            },
            {
                "service": name,
                "version": 1,
                "image": "sha256:aa",
                "at": time.time() - 600,
                "reason": "start-up",
            },
        ],
        **info,
    }


def status_doc(
    project: str, services: dict[str, dict[str, Any]], alive: bool = True
) -> dict[str, Any]:
    now = time.time()
    beat = {
        "pid": 4242,
        "host": "devbox",
        "started": f"{now - 300:.3f}",
        "at": f"{now:.3f}",
        "version": "0.1.0",
        "threads": {"reactor": "running", "http": "running"},
    }
    return {
        "project": project,
        "alive": alive,
        "threads": beat["threads"] if alive else {},
        "heartbeat": beat if alive else None,
        "project_info": {"workspace": "/src/shop", "compose_files": "", "load_error": ""},
        "services": services,
    }
