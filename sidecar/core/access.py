"""Who may call the HTTP API, decided without I/O: the listen address, whether it is
loopback, and each request's verdict from its method, path, Host and Authorization header.

The rules (README "HTTP API"):
- state-changing requests (anything but GET/HEAD) always need `Authorization: Bearer
  <http_token>`; without a configured token they are refused (403), so an API that can
  scale or stop the project is never open by accident;
- on an address that is not loopback every API request needs the token;
- on loopback, GETs need none, but the Host header must name loopback: a web page the
  developer opens elsewhere cannot read the API through DNS rebinding (its requests carry
  the attacker's host name);
- the dashboard's page and assets (`/`, `/static/...`) hold no data: they are served to
  anyone who can connect, so a browser can load the page before it has the token;
- the git hosts' webhooks (`POST /v1/hooks/github|gitea|gitlab`) carry no bearer token:
  their handler checks the host's signature (or GitLab's token) against hook_secret; the
  registries' (`/v1/hooks/registry`, `/v1/hooks/dockerhub/<token>`) carry
  registry_hook_token, checked by theirs.

A wrong or missing token says only `unauthorized`, whatever was wrong with it."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

SAFE_METHODS = frozenset({"GET", "HEAD"})
UNAUTHORIZED = "unauthorized"
NO_TOKEN = "no http_token configured"  # noqa: S105 - a message, not a password
BAD_HOST = "host not allowed"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen | None:
    """`host:port`, `[v6]:port` or `:port` (every interface) -> Listen; '' -> None (the
    server is off). Raises ValueError saying what is wrong."""
    text = text.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"listen address {text!r} has no port (host:port)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {text!r}: write an IPv6 address as [addr]:port")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {text!r}: port must be 0-65535")
    return Listen(host or "0.0.0.0", int(port))  # noqa: S104 - `:port` asks for it


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, `localhost` and names under `.localhost` (RFC 6761)."""
    host = host.strip().rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str:
    """The host name of a Host header (`127.0.0.1:8765`, `[::1]:8765`, `web.localhost`)."""
    header = header.strip()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def bearer_matches(authorization: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip() or not token:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


GIT_HOOKS = frozenset({"/v1/hooks/github", "/v1/hooks/gitea", "/v1/hooks/gitlab"})
REGISTRY_HOOKS = ("/v1/hooks/registry", "/v1/hooks/dockerhub/")


def is_hook(path: str) -> bool:
    """The webhooks: verified by their handler (a signature, or registry_hook_token)."""
    return path in GIT_HOOKS or path == REGISTRY_HOOKS[0] or path.startswith(REGISTRY_HOOKS[1])


def is_public(path: str) -> bool:
    """The dashboard's page and assets: code that ships with the sidecar, no data."""
    return path == "/" or path.startswith("/static/")


@dataclass(frozen=True)
class Denied:
    status: int  # 401, 403
    error: str


def check_access(
    method: str,
    path: str,
    *,
    loopback: bool,
    token: str,
    authorization: str | None,
    host: str | None,
) -> Denied | None:
    """None when the request may go on, else why not. `token`: the configured http_token
    ('' when none); `host`: the request's Host header (None when it sent none)."""
    safe = method.upper() in SAFE_METHODS
    if safe and is_public(path):
        return None
    if is_hook(path):
        return None  # signed, or carrying registry_hook_token: checked by the handler
    if not safe or not loopback:
        if not token:
            return Denied(403, NO_TOKEN)
        return None if bearer_matches(authorization, token) else Denied(401, UNAUTHORIZED)
    if host is None or is_loopback(host_of(host)) or bearer_matches(authorization, token):
        return None
    return Denied(403, BAD_HOST)
