"""HTTP on loopback (or to containers the caller made): one-shot GETs and a Host-routed entry."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Callable


def get_url(url: str, timeout: float = 1.0) -> str | None:
    """The body of a 200 answer (loopback, or a container the test made), else None."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return str(r.read().decode().strip())
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return None  # not served (yet): a container going away mid-response counts too


def http_get(port: int, path: str = "/", timeout: float = 1.0) -> str | None:
    return get_url(f"http://127.0.0.1:{port}{path}", timeout)


def fetch(port: int, path: str = "/", timeout: float = 0.25) -> str | None:
    """Body of GET http://127.0.0.1:<port><path> (stripped), None on any failure; no urllib
    machinery, so a benchmark's probe costs little more than the request itself."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        if resp.status != 200:
            return None
        return resp.read().decode(errors="replace").strip()
    except Exception:  # any failure means "not served"
        return None
    finally:
        conn.close()


def serves(port: int, expected: str, path: str = "/") -> Callable[[], bool]:
    """A check for `poll`: GET `path` returns exactly `expected`."""
    return lambda: fetch(port, path) == expected


class Entry:
    """An HTTP entry point on loopback that routes by the Host header (a Traefik)."""

    def __init__(self, web_port: int) -> None:
        self.web_port = web_port

    def get(self, host: str, path: str = "/", timeout: float = 2.0) -> tuple[int, str]:
        """(status, body) of a request through Traefik; status 0 on a connection error, the
        body then being `<exception type>: <message>`."""
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace").strip()
        except (OSError, http.client.HTTPException) as exc:
            return 0, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
