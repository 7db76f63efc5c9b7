"""What the HTTP handlers make of their input, before any I/O: command bodies, event-stream
positions, long-poll parameters, SSE framing, static paths."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from sidecar.adapters.web.handlers import (
    BACKLOG_MAX,
    WATCH_MAX_S,
    BadRequest,
    command_fields,
    sse_message,
    static_file,
    stream_start,
    watch_params,
)
from sidecar.adapters.web.hub import Subscription, parse_id


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            b'{"action": "scale", "service": "web", "replicas": 3, "id": "c1"}',
            {"action": "scale", "service": "web", "replicas": "3", "id": "c1"},
        ),
        (
            b'{"action": "pause", "id": "c2", "flag": true, "none": null}',
            {"action": "pause", "id": "c2", "flag": "true", "none": ""},
        ),
        (
            b'{"action": "scale", "replicas": 2.5, "id": "c3"}',
            {"action": "scale", "replicas": "2.5", "id": "c3"},
        ),  # the daemon refuses it
        (
            b'{"action": "scale", "replicas": [1, 2], "id": "c4"}',
            {"action": "scale", "replicas": "[1, 2]", "id": "c4"},
        ),
        (b'{"action": "reload", "id": 7}', {"action": "reload", "id": "7"}),
    ],
)
def test_command_fields(body: bytes, fields: dict[str, str]) -> None:
    assert command_fields(body) == fields


@pytest.mark.parametrize("body", [b'{"action": "reload"}', b'{"action": "reload", "id": ""}'])
def test_a_command_without_id_gets_one(body: bytes) -> None:
    fields = command_fields(body)
    assert fields["action"] == "reload"
    assert len(fields["id"]) == 32 and fields["id"].isalnum()
    assert command_fields(body)["id"] != fields["id"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "malformed JSON"),
        (b"{", "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b"action=scale", "malformed JSON"),
        (b"[]", "JSON object"),
        (b'"scale"', "JSON object"),
        (b"3", "JSON object"),
        (b"null", "JSON object"),
    ],
)
def test_command_bodies_refused(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        command_fields(body)


@pytest.mark.parametrize(
    ("after", "backlog", "start"),
    [
        (None, None, (None, 0)),
        (None, "", (None, 0)),
        (None, "20", (None, 20)),
        (None, "999999999", (None, BACKLOG_MAX)),
        ("1700000000000-3", None, ("1700000000000-3", 0)),
        ("1700000000000", "5", ("1700000000000", 0)),  # an id wins over a backlog
        (" 17-0 ", None, ("17-0", 0)),
    ],
)
def test_stream_start(
    after: str | None, backlog: str | None, start: tuple[str | None, int]
) -> None:
    assert stream_start(after, backlog) == start


@pytest.mark.parametrize(
    ("after", "backlog"),
    [("$", None), ("abc", None), ("1-2-3", None), ("17-", None), (None, "-1"), (None, "x")],
)
def test_stream_start_refuses(after: str | None, backlog: str | None) -> None:
    with pytest.raises(BadRequest):
        stream_start(after, backlog)


@pytest.mark.parametrize(
    ("a", "b"),
    [("1-0", "1-1"), ("1-9", "2-0"), ("9-0", "10-0"), ("1700000000000", "1700000000000-1")],
)
def test_stream_ids_compare_as_numbers(a: str, b: str) -> None:
    assert parse_id(a) < parse_id(b)


@pytest.mark.parametrize(
    ("query", "params"),
    [
        ({"service": "web"}, ("web", 0, 30.0)),
        ({"service": "web", "after": "4", "timeout": "2.5"}, ("web", 4, 2.5)),
        ({"service": "web", "timeout": "0"}, ("web", 0, 0.0)),
        ({"service": "web", "timeout": "86400"}, ("web", 0, WATCH_MAX_S)),
    ],
)
def test_watch_params(query: dict[str, str], params: tuple[str, int, float]) -> None:
    assert watch_params(query) == params


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"service": ""},
        {"service": "web", "after": "-1"},
        {"service": "web", "after": "v3"},
        {"service": "web", "timeout": "-1"},
        {"service": "web", "timeout": "soon"},
        {"service": "web", "timeout": "nan"},
        {"service": "web", "timeout": "inf"},
    ],
)
def test_watch_params_refused(query: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        watch_params(query)


def test_sse_message_frames_one_entry() -> None:
    fields = {"event": "build-started", "service": "web", "reason": "a\nb"}
    text = sse_message(("17-0", fields)).decode()
    lines = text.split("\n")
    assert lines[:2] == ["id: 17-0", "event: build-started"]
    assert lines[2].startswith("data: ") and json.loads(lines[2][6:]) == fields
    assert text.endswith("\n\n") and text.count("\n") == 4  # newlines in values stay escaped


def test_sse_event_name_cannot_break_the_frame() -> None:
    text = sse_message(("1-0", {"event": "x\ndata: forged"})).decode()
    assert "\ndata: forged" not in text.split("\ndata: {")[0]


@pytest.mark.parametrize(
    ("rel", "served"),
    [
        ("index.html", True),
        ("js/app.js", True),
        ("", False),
        ("../secret.txt", False),
        ("js/../../secret.txt", False),
        ("js/../index.html", False),
        ("/etc/passwd", False),
        (".hidden", False),
        ("js/.hidden", False),
        ("js", False),  # a directory
        ("link-out", False),  # a symlink leaving the directory
        ("missing.css", False),
        ("js\\app.js", False),
        ("index.html\0.png", False),
    ],
)
def test_static_file(tmp_path: Path, rel: str, served: bool) -> None:
    root = tmp_path / "static"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html>")
    (root / "js" / "app.js").write_text("1")
    (root / ".hidden").write_text("no")
    (root / "js" / ".hidden").write_text("no")
    (tmp_path / "secret.txt").write_text("no")
    os.symlink(tmp_path / "secret.txt", root / "link-out")
    got = static_file(root, rel)
    assert (got is not None) is served
    if got is not None:
        assert root.resolve() in got.parents


def test_a_subscription_overflows_instead_of_growing() -> None:
    async def scenario() -> None:
        sub = Subscription(limit=2, want=lambda f: f.get("event") == "deployed")
        for i in range(5):
            sub.offer((f"{i}-0", {"event": "deployed"}))
            sub.offer((f"{i}-1", {"event": "other"}))  # not wanted: not kept
        assert sub.overflowed
        assert [e[0] for e in await sub.take(0.01)] == ["0-0", "1-0"]
        assert await sub.take(0.01) == []

    asyncio.run(scenario())
