"""The sidecar's HTTP API from the outside (loopback only): plain requests, the event stream
(SSE) read line by line, and raw sockets for what a well-behaved client never sends."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Requests to `http://127.0.0.1:<port>`; the Bearer token goes with every request
    unless `token=None` or another one is given."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        token: str | bool | None = True,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Answer:
        hdrs = dict(headers or {})
        use = self.token if token is True else (token or None)
        if use:
            hdrs["Authorization"] = f"Bearer {use}"
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: bytes | dict[str, Any] | None, **kw: Any) -> Answer:
        return self.request("POST", path, body, **kw)

    def up(self) -> bool:
        try:
            return self.get("/healthz", timeout=2).status == 200
        except OSError:
            return False

    def metric(self, line_prefix: str) -> float | None:
        """The value of the first sample of `/metrics` whose line starts with the prefix
        (`sidecar_builds_total{result="ok",service="web"}`)."""
        text = self.get("/metrics").body.decode()
        for line in text.splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


@dataclass
class Message:
    id: str
    event: str
    data: dict[str, Any]


@dataclass
class EventStream:
    """`GET /v1/events` kept open, parsed as Server-Sent Events."""

    port: int
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    comments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        lines = [f"GET /v1/events{self.query} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.file = self.sock.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        self.response_headers: dict[str, str] = {}
        while (line := self.file.readline().decode().rstrip("\r\n")) != "":
            key, _, value = line.partition(":")
            self.response_headers[key.strip().lower()] = value.strip()
        self.chunked = self.response_headers.get("transfer-encoding") == "chunked"
        self._buffer = b""

    def _chunk(self) -> bytes:
        if not self.chunked:
            return self.file.read1(65536)
        size_line = self.file.readline()
        if not size_line:
            return b""
        size = int(size_line.strip() or b"0", 16)
        data = self.file.read(size + 2)[:size] if size else b""
        return data

    def _line(self, deadline: float) -> str | None:
        while b"\n" not in self._buffer:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self._chunk()
            except TimeoutError:
                return None
            if not data:
                raise EOFError("the event stream ended")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode().rstrip("\r")

    def next(self, timeout: float = 30.0) -> Message | None:
        """The next message (comments are collected on the way); None at the timeout."""
        deadline = time.monotonic() + timeout
        fields: dict[str, str] = {}
        while True:
            line = self._line(deadline)
            if line is None:
                return None
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line == "" and fields:
                return Message(fields["id"], fields["event"], json.loads(fields["data"]))
            elif line:
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")

    def until(self, event: str, service: str = "", timeout: float = 60.0) -> list[Message]:
        """Messages up to and including the first `event` (of `service`, if given)."""
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while time.monotonic() < deadline:
            msg = self.next(deadline - time.monotonic())
            if msg is None:
                break
            seen.append(msg)
            if msg.event == event and (not service or msg.data.get("service") == service):
                return seen
        raise AssertionError(f"no {event} within {timeout}s; saw {[m.event for m in seen]}")

    def close(self, reset: bool = False) -> None:
        """Hang up (`reset`: with a TCP RST, as a killed client does)."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.file.close()
        self.sock.close()


def raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes as they are and read the answer until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except TimeoutError:
            pass
        return out


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer (0: none came)."""
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
