"""Who may call the HTTP API (sidecar.core.access): tables of plain data."""

from __future__ import annotations

import pytest

from sidecar.core.access import (
    BAD_HOST,
    NO_TOKEN,
    UNAUTHORIZED,
    Denied,
    Listen,
    bearer_matches,
    check_access,
    host_of,
    is_loopback,
    parse_listen,
)


@pytest.mark.parametrize(
    ("text", "listen"),
    [
        ("127.0.0.1:8765", Listen("127.0.0.1", 8765)),
        ("  127.0.0.1:0 ", Listen("127.0.0.1", 0)),
        ("0.0.0.0:80", Listen("0.0.0.0", 80)),
        (":8765", Listen("0.0.0.0", 8765)),
        ("[::1]:8765", Listen("::1", 8765)),
        ("[::]:8765", Listen("::", 8765)),
        ("localhost:9000", Listen("localhost", 9000)),
        ("", None),
        ("   ", None),
    ],
)
def test_parse_listen(text: str, listen: Listen | None) -> None:
    assert parse_listen(text) == listen


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "no port"),
        ("127.0.0.1:http", "port must be"),
        ("127.0.0.1:65536", "port must be"),
        ("127.0.0.1:-1", "port must be"),
        ("::1:8765", "IPv6"),
    ],
)
def test_parse_listen_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("web.localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert Listen(host, 1).loopback is loopback


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("127.0.0.1:8765", "127.0.0.1"),
        ("localhost", "localhost"),
        ("[::1]:8765", "::1"),
        ("[::1]", "::1"),
        ("evil.example:80", "evil.example"),
    ],
)
def test_host_of(header: str, host: str) -> None:
    assert host_of(header) == host


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("Bearer  s3cret ", True),
        ("Bearer s3cre", False),
        ("Bearer s3cret2", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("Bearer ", False),
        ("", False),
        (None, False),
    ],
)
def test_bearer_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(header, "s3cret") is ok


def test_no_configured_token_matches_nothing() -> None:
    assert not bearer_matches("Bearer ", "")
    assert not bearer_matches("Bearer x", "")


LOCAL = "127.0.0.1:8765"
GOOD = "Bearer t"
BAD = "Bearer nope"


@pytest.mark.parametrize(
    ("method", "path", "loopback", "token", "auth", "host", "verdict"),
    [
        # loopback: reading needs no token
        ("GET", "/v1/status", True, "t", None, LOCAL, None),
        ("GET", "/v1/status", True, "", None, LOCAL, None),
        ("HEAD", "/metrics", True, "t", None, "localhost:8765", None),
        ("GET", "/v1/nosuch", True, "t", None, LOCAL, None),  # the router says 404
        # loopback: a foreign Host (DNS rebinding) is refused, unless the token is sent
        ("GET", "/v1/status", True, "t", None, "evil.example:8765", Denied(403, BAD_HOST)),
        ("GET", "/v1/status", True, "t", GOOD, "evil.example:8765", None),
        ("GET", "/v1/status", True, "t", None, None, None),  # HTTP/1.0 without Host
        # state-changing requests always need the token
        ("POST", "/v1/commands", True, "t", None, LOCAL, Denied(401, UNAUTHORIZED)),
        ("POST", "/v1/commands", True, "t", BAD, LOCAL, Denied(401, UNAUTHORIZED)),
        ("POST", "/v1/commands", True, "t", GOOD, LOCAL, None),
        ("POST", "/v1/commands", True, "", GOOD, LOCAL, Denied(403, NO_TOKEN)),
        ("DELETE", "/v1/status", True, "t", None, LOCAL, Denied(401, UNAUTHORIZED)),
        ("POST", "/", True, "t", None, LOCAL, Denied(401, UNAUTHORIZED)),
        # off loopback every API request needs it
        ("GET", "/v1/status", False, "t", None, "10.0.0.5:8765", Denied(401, UNAUTHORIZED)),
        ("GET", "/metrics", False, "t", BAD, "10.0.0.5:8765", Denied(401, UNAUTHORIZED)),
        ("GET", "/healthz", False, "t", GOOD, "10.0.0.5:8765", None),
        ("GET", "/v1/status", False, "", None, "10.0.0.5:8765", Denied(403, NO_TOKEN)),
        # the dashboard's page and assets hold no data
        ("GET", "/", False, "t", None, "10.0.0.5:8765", None),
        ("GET", "/static/app.js", False, "", None, "10.0.0.5:8765", None),
        ("GET", "/static/app.js", True, "t", None, "evil.example", None),
        ("GET", "/staticx", False, "t", None, "10.0.0.5:8765", Denied(401, UNAUTHORIZED)),
    ],
)
def test_check_access(
    method: str,
    path: str,
    loopback: bool,
    token: str,
    auth: str | None,
    host: str | None,
    verdict: Denied | None,
) -> None:
    got = check_access(method, path, loopback=loopback, token=token, authorization=auth, host=host)
    assert got == verdict
