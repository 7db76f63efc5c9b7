"""Container registries over the distribution HTTP API: the current digest of a tag without
pulling it (a manifest HEAD, which Docker Hub does not count against its pull rate limit), or
the manifest itself (an image index lists one manifest per platform; the caller picks).

Authentication as Docker does it: a request goes out anonymously (or with what worked for
that registry before); a 401 names the scheme. `Bearer realm=...,service=...,scope=...`: a
token from the realm (with the registry's Basic credentials, if any), cached per (registry,
scope) until it expires; `Basic`: the credentials themselves. Credentials come from the
caller, usually `docker_config_auths(~/.docker/config.json)`.

Transport: HTTPS with the certificate verified, except for registries listed as insecure and
loopback ones (127.0.0.0/8, ::1, localhost), which get plain HTTP, like Docker's default.
Docker Hub (`docker.io`) is served at registry-1.docker.io. Every request has a timeout; 429,
5xx and no answer are retried with backoff (Retry-After honoured up to 30 s: a registry that
asks for longer is left alone until the caller's next round), then `RegistryError(retryable=
True)`. Synchronous (requests): the callers run on worker threads.

Passwords and tokens never reach a message or a log line: the text that comes from outside
(exceptions, registry error bodies) is redacted, and ours names only the registry, the
repository, the reference and the user name."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from loguru import logger
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_any
from tenacity.stop import stop_base

from sidecar import __version__
from sidecar.adapters.git import redact
from sidecar.adapters.retries import log_attempt
from sidecar.core.errors import RegistryError
from sidecar.core.types import BasicAuth

T = TypeVar("T")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# what the sidecar can deploy; an index or list first, so a registry never picks a platform
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

DOCKER_HUB = "docker.io"
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_HUB_API = "https://registry-1.docker.io"
MANIFEST_MAX = 4 * 1024 * 1024
_TOKEN_MAX = 64 * 1024
_ERROR_BODY_MAX = 4096
RETRY_AFTER_MAX = 30.0
_USER_AGENT = f"compose-sidecar/{__version__}"

# the distribution reference grammar, enough to keep a name from being a path expression
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^\w[\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_SSL = re.compile(r"\[SSL: \w+\] ([^('\"]+)")


RegistryAuth = BasicAuth  # a registry's credentials (also what a token service is asked with)


@dataclass(frozen=True)
class ManifestHead:
    digest: str  # Docker-Content-Digest
    media_type: str  # Content-Type
    size: int


# --- names ---------------------------------------------------------------------------------
def normalise_registry(name: str) -> str:
    """A registry as docker's config and image references name it, reduced to its host[:port]:
    `https://index.docker.io/v1/` -> `docker.io`, `http://localhost:5000/v2/` ->
    `localhost:5000`, `GHCR.io` -> `ghcr.io`."""
    text = name.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host = text.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _HUB_NAMES else host


def _hostname(host: str) -> str:
    """`[::1]:5000` -> `::1`, `localhost:5000` -> `localhost`."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback(host: str) -> bool:
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_insecure(registry: str, insecure: Collection[str]) -> bool:
    """Plain HTTP for `registry`: listed (as host[:port], or a CIDR its address is in, like
    Docker's `insecure-registries`), or on loopback."""
    host = normalise_registry(registry)
    if _is_loopback(host):
        return True
    for entry in insecure:
        if normalise_registry(entry) == host:
            return True
        try:
            if ipaddress.ip_address(_hostname(host)) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def endpoint(registry: str, insecure: Collection[str] = ()) -> str:
    """The base URL of a registry's API: `docker.io` -> https://registry-1.docker.io."""
    host = normalise_registry(registry)
    if host == DOCKER_HUB:
        return _HUB_API
    return f"{'http' if is_insecure(host, insecure) else 'https'}://{host}"


def _repository(registry: str, repository: str) -> str:
    """Docker Hub's official images live under `library/` (`nginx` is `library/nginx`)."""
    if not _REPOSITORY.match(repository):
        raise ValueError(f"not a repository name: {repository!r}")
    if registry == DOCKER_HUB and "/" not in repository:
        return f"library/{repository}"
    return repository


def _reference(reference: str) -> str:
    if not (_TAG.match(reference) or _DIGEST.match(reference)):
        raise ValueError(f"not a tag or digest: {reference!r}")
    return reference


# --- docker's config.json ------------------------------------------------------------------
def docker_config_auths(path: Path) -> dict[str, RegistryAuth]:
    """The credentials in a docker config.json's `auths`, by registry (`normalise_registry`
    of the key; the first entry wins when two keys name one registry). A missing file is no
    credentials; entries without any (their secret kept by a credential helper) are left
    out, and so are identity tokens; credential helpers are not run (logged once)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a JSON object")
    helpers = config.get("credHelpers") or {}
    if config.get("credsStore") or helpers:
        logger.info(
            "{}: credential helpers are not used (credsStore {!r}, credHelpers for {}); "
            "registries that need credentials need them in auths",
            path,
            config.get("credsStore") or "",
            ", ".join(sorted(helpers)) if isinstance(helpers, dict) else "?",
        )
    auths = config.get("auths") or {}
    found: dict[str, RegistryAuth] = {}
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        registry = normalise_registry(str(key))
        creds = _entry(path, str(key), entry)
        if creds is not None and registry not in found:
            found[registry] = creds
    return found


def _entry(path: Path, key: str, entry: object) -> RegistryAuth | None:
    if not isinstance(entry, dict):
        return None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep or not user:
            logger.warning("{}: the auth of {} is not base64 of user:password; skipped", path, key)
            return None
        return RegistryAuth(user, password)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and name and isinstance(secret, str):
        return RegistryAuth(name, secret)
    if entry.get("identitytoken"):
        logger.info("{}: the identity token for {} is not used", path, key)
    return None


# --- errors --------------------------------------------------------------------------------
class _Busy(RegistryError):
    """A retryable failure; `retry_after` when the registry said how long to wait."""

    def __init__(
        self, message: str, reason: str, status: int = 0, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status, retryable=True)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _no_answer(exc: requests.RequestException) -> str:
    """Why a request got no answer, shortly (a connection error's text is a pool's repr)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    found = _SSL.findall(text) or _ERRNO.findall(text)
    return found[-1].strip().lower() if found else type(exc).__name__


def _challenge(header: str) -> tuple[str, dict[str, str]] | None:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {...}); Bearer preferred
    when a registry offers several schemes."""
    schemes = re.split(r"(?i)(?:^|,)\s*(?=(?:bearer|basic)\s)", header)
    found: dict[str, dict[str, str]] = {}
    for part in schemes:
        scheme, _, rest = part.strip().partition(" ")
        if scheme.lower() in ("bearer", "basic"):
            params = {
                m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                for m in _CHALLENGE_PARAM.finditer(rest)
            }
            found.setdefault(scheme.lower(), params)
    for scheme in ("bearer", "basic"):
        if scheme in found:
            return scheme, found[scheme]
    return None


class _Header(requests.auth.AuthBase):
    """Sets (or leaves unset) Authorization; being an auth at all keeps requests from adding
    ~/.netrc's credentials."""

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.value:
            r.headers["Authorization"] = self.value
        return r


@dataclass
class _Token:
    value: str
    expires: float  # time.monotonic()


@dataclass
class _Request:
    """One manifest request and how it reads in messages."""

    method: str
    registry: str
    repository: str
    reference: str
    url: str

    @property
    def where(self) -> str:
        sep = "@" if ":" in self.reference else ":"
        name = f"{self.repository}{sep}{self.reference}"
        return f"registry {self.registry}: manifest {self.method} {name}"

    @property
    def scope(self) -> str:
        return f"repository:{self.repository}:pull"


class Registries:
    """Manifest questions to any registry, with credentials by registry (`normalise_registry`
    keys, e.g. from `docker_config_auths`). Safe to share between threads."""

    def __init__(
        self,
        auths: Mapping[str, RegistryAuth] | None = None,
        insecure: Collection[str] = (),
        timeout_s: float = 10.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.auths = {normalise_registry(k): v for k, v in (auths or {}).items()}
        self.insecure = tuple(insecure)
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self._http = requests.Session()  # proxies and CA bundle from the environment
        self._http.headers["User-Agent"] = _USER_AGENT
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._challenges: dict[str, tuple[str, dict[str, str]]] = {}

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"Registries(auths for {sorted(self.auths)}, insecure={list(self.insecure)})"

    # --- the questions ---------------------------------------------------------------------
    def head_manifest(self, registry: str, repository: str, reference: str) -> ManifestHead:
        """The digest, media type and size of a manifest, without its body (a HEAD, which
        Docker Hub does not count as a pull). An index's own digest for a multi-platform tag.
        A registry that leaves the digest out of a HEAD is asked with a GET instead."""
        req = self._request("HEAD", registry, repository, reference)

        def once() -> ManifestHead | None:
            resp = self._open(req, stream=False)
            resp.close()
            digest = resp.headers.get("Docker-Content-Digest", "").strip()
            length = resp.headers.get("Content-Length", "")
            if not digest or not length.isdigit():
                return None
            return ManifestHead(digest, _media_type(resp), int(length))

        head = self._retrying(req, once)
        if head is None:
            logger.debug("{}: no digest in the HEAD answer; asking with GET", req.where)
            head, _ = self.get_manifest(registry, repository, reference)
        logger.debug("{} -> {}", req.where, head.digest)
        return head

    def get_manifest(
        self, registry: str, repository: str, reference: str
    ) -> tuple[ManifestHead, dict[str, Any]]:
        """The manifest and its JSON (at most 4 MiB). The digest is that of the bytes read,
        checked against Docker-Content-Digest and a digest reference."""
        req = self._request("GET", registry, repository, reference)

        def once() -> tuple[ManifestHead, dict[str, Any]]:
            resp = self._open(req, stream=True)
            body = self._read(resp, MANIFEST_MAX, req.where)
            return self._manifest(req, resp, body)

        return self._retrying(req, once)

    # --- requests --------------------------------------------------------------------------
    def _request(self, method: str, registry: str, repository: str, reference: str) -> _Request:
        host = normalise_registry(registry)
        if not host:
            raise ValueError(f"not a registry: {registry!r}")
        repo = _repository(host, repository)
        ref = _reference(reference)
        url = f"{endpoint(host, self.insecure)}/v2/{repo}/manifests/{ref}"
        return _Request(method, host, repo, ref, url)

    def _manifest(
        self, req: _Request, resp: requests.Response, body: bytes
    ) -> tuple[ManifestHead, dict[str, Any]]:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        said = resp.headers.get("Docker-Content-Digest", "").strip()
        if said.startswith("sha256:") and said != digest:
            raise RegistryError(
                f"{req.where}: the body is {digest}, not {said} as the registry said"
            )
        if req.reference.startswith("sha256:") and req.reference != digest:
            raise RegistryError(f"{req.where}: the registry answered a manifest of {digest}")
        try:
            document = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            document = None
        if not isinstance(document, dict):
            raise RegistryError(f"{req.where}: the manifest is not a JSON object", resp.status_code)
        media = _media_type(resp) or str(document.get("mediaType") or "")
        return ManifestHead(said or digest, media, len(body)), document

    def _retrying(self, req: _Request, call: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_any(stop_after_attempt(self.attempts), _AskedToWaitLong()),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, RegistryError) and e.retryable),
            before_sleep=log_attempt(req.where, self.attempts, self._describe),
            reraise=True,
        )
        try:
            return retrying(call)
        except RegistryError as exc:
            message = self._redact(str(exc))
            if exc.retryable:
                tries = retrying.statistics.get("attempt_number", 1)
                message += f" (gave up after {tries} attempt{'s' if tries != 1 else ''})"
            raise RegistryError(message, exc.status, exc.retryable) from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = min(self.backoff_s * 2.0 ** (state.attempt_number - 1), RETRY_AFTER_MAX)
        if isinstance(exc, _Busy) and exc.retry_after is not None:
            return max(backoff, exc.retry_after)
        return backoff

    def _describe(self, exc: BaseException | None) -> str:
        if isinstance(exc, _Busy):
            return self._redact(exc.reason)
        return type(exc).__name__

    def _secrets(self) -> list[str]:
        found: list[str] = []
        for auth in self.auths.values():
            basic = auth.basic()
            found += [auth.secret, basic, basic.removeprefix("Basic ")]
        with self._lock:
            found += [token.value for token in self._tokens.values()]
        return found

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets())

    def _send(
        self,
        method: str,
        url: str,
        where: str,
        authorization: str | None,
        *,
        accept: str | None = None,
        params: Mapping[str, str | list[str]] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        headers = {"Accept": accept} if accept else {}
        if method == "HEAD":
            headers["Accept-Encoding"] = "identity"  # Content-Length is the manifest's size
        started = time.monotonic()
        try:
            resp = self._http.request(
                method,
                url,
                headers=headers,
                params=params,
                auth=_Header(authorization),
                timeout=self.timeout_s,
                allow_redirects=True,
                stream=stream,
            )
        except requests.exceptions.SSLError as exc:
            # a certificate that does not verify will not verify on the next try either
            raise RegistryError(f"{where}: TLS failed ({self._redact(_no_answer(exc))})") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = f"no answer ({self._redact(_no_answer(exc))})"
            raise _Busy(f"{where}: {reason}", reason) from None
        except requests.RequestException as exc:
            raise RegistryError(f"{where}: {self._redact(str(exc))}") from None
        took = (time.monotonic() - started) * 1000
        logger.debug("{} -> {} in {:.0f} ms", where, resp.status_code, took)
        return resp

    def _open(self, req: _Request, stream: bool) -> requests.Response:
        """The 200 answer to `req`, through whatever authentication the registry asks for."""
        authorization, cached = self._known(req)
        resp = self._send(
            req.method, req.url, req.where, authorization, accept=ACCEPT, stream=stream
        )
        if resp.status_code == 401 and (authorization is None or cached):
            found = _challenge(resp.headers.get("WWW-Authenticate", ""))
            resp.close()
            if found is None:
                raise RegistryError(f"{req.where}: 401 without a challenge this client knows", 401)
            scheme, params = found
            with self._lock:
                # remembered for the next repository too, so without this one's scope
                kept = {k: v for k, v in params.items() if k not in ("scope", "error")}
                self._challenges[req.registry] = (scheme, kept)
                self._tokens.pop((req.registry, req.scope), None)
            authorization = self._answer(req, found)
            if authorization is None:
                raise RegistryError(
                    f"{req.where}: the registry asks for credentials (Basic) and there are none"
                    f" for {req.registry}",
                    401,
                )
            resp = self._send(
                req.method, req.url, req.where, authorization, accept=ACCEPT, stream=stream
            )
        if resp.status_code == 401:
            resp.close()
            raise RegistryError(f"{req.where}: 401 unauthorized {self._who(req)}", 401)
        if resp.status_code != 200:
            raise self._status_error(req.where, resp)
        return resp

    def _who(self, req: _Request) -> str:
        auth = self.auths.get(req.registry)
        if auth is None:
            return (
                f"(anonymous: no credentials for {req.registry}; the repository may be private"
                " or not exist)"
            )
        return f"as {auth.username} (wrong credentials, or no pull access to {req.repository})"

    def _status_error(
        self, where: str, resp: requests.Response, manifest: bool = True
    ) -> RegistryError:
        status = resp.status_code
        says = self._redact(_says(resp))
        resp.close()
        if status == 429 or status >= 500:
            after = _retry_after(resp.headers.get("Retry-After"))
            reason = f"{status} {resp.reason or ''}".strip()
            if after is not None:
                reason += f", retry after {after:.0f} s"
            return _Busy(f"{where}: {reason}{says}", reason, status, after)
        if status == 404 and manifest:
            return RegistryError(f"{where}: manifest unknown (404){says}", 404)
        return RegistryError(f"{where}: {status} {resp.reason or ''}{says}".strip(), status)

    def _known(self, req: _Request) -> tuple[str | None, bool]:
        """What to send before any 401: a cached token (True), else an answer to the
        registry's last challenge, else nothing."""
        with self._lock:
            token = self._tokens.get((req.registry, req.scope))
            if token is not None and token.expires > time.monotonic():
                return f"Bearer {token.value}", True
            found = self._challenges.get(req.registry)
        return (self._answer(req, found) if found else None), False

    def _answer(self, req: _Request, found: tuple[str, dict[str, str]]) -> str | None:
        scheme, params = found
        auth = self.auths.get(req.registry)
        if scheme == "basic":
            return auth.basic() if auth else None
        return f"Bearer {self._token(req, params, auth)}"

    def _token(self, req: _Request, params: Mapping[str, str], auth: RegistryAuth | None) -> str:
        """A token for `req.scope` from the challenge's realm (with Basic credentials when
        there are any), cached until its expires_in (60 s when it says none)."""
        realm = params.get("realm", "")
        split = urlsplit(realm)
        where = f"registry {req.registry}: token for {req.repository}"
        if split.scheme not in ("http", "https") or not split.hostname:
            raise RegistryError(f"{where}: the challenge's realm is not an HTTP URL", 401)
        if auth and split.scheme == "http" and not is_insecure(split.netloc, self.insecure):
            raise RegistryError(
                f"{where}: the token service {split.netloc} is plain HTTP; credentials are not"
                " sent there",
                401,
            )
        # our scope, and the challenge's when it asks for another (several `scope=` are fine)
        scopes = [req.scope]
        if params.get("scope") and params["scope"] != req.scope:
            scopes.append(params["scope"])
        query: dict[str, str | list[str]] = {"scope": scopes}
        if params.get("service"):
            query["service"] = params["service"]
        resp = self._send(
            "GET", realm, where, auth.basic() if auth else None, params=query, stream=True
        )
        if resp.status_code in (401, 403):
            resp.close()
            who = f"the credentials of {auth.username}" if auth else "an anonymous token"
            raise RegistryError(
                f"{where}: the token service {split.netloc} refused {who} ({resp.status_code})",
                401,
            )
        if resp.status_code != 200:
            raise self._status_error(where, resp, manifest=False)
        try:
            answer = json.loads(self._read(resp, _TOKEN_MAX, where))
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = None
        if not isinstance(answer, dict):
            answer = {}
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{where}: the token service {split.netloc} answered no token", 401)
        lifetime = answer.get("expires_in", 60)
        seconds = float(lifetime) if isinstance(lifetime, int | float) else 60.0
        with self._lock:
            self._tokens[(req.registry, req.scope)] = _Token(
                token, time.monotonic() + seconds - min(10.0, seconds / 10)
            )
        logger.debug("{} from {} (for {:.0f} s)", where, split.netloc, seconds)
        return token

    def _read(self, resp: requests.Response, cap: int, where: str) -> bytes:
        """The body, at most `cap` bytes and `timeout_s` seconds of reading."""
        try:
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > cap:
                raise RegistryError(
                    f"{where}: {length} bytes, over the cap of {cap}", resp.status_code
                )
            deadline = time.monotonic() + self.timeout_s
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_content(64 * 1024):
                size += len(chunk)
                if size > cap:
                    raise RegistryError(f"{where}: over the cap of {cap} bytes", resp.status_code)
                if time.monotonic() > deadline:
                    reason = f"the answer took over {self.timeout_s:g} s"
                    raise _Busy(f"{where}: {reason}", reason, resp.status_code)
                chunks.append(chunk)
            return b"".join(chunks)
        except requests.RequestException as exc:
            reason = f"the answer broke off ({self._redact(_no_answer(exc))})"
            raise _Busy(f"{where}: {reason}", reason, resp.status_code) from None
        finally:
            resp.close()


class _AskedToWaitLong(stop_base):
    """Stop retrying when the registry asks for more than RETRY_AFTER_MAX seconds of rest."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return isinstance(exc, _Busy) and (exc.retry_after or 0) > RETRY_AFTER_MAX


def _media_type(resp: requests.Response) -> str:
    return resp.headers.get("Content-Type", "").split(";", 1)[0].strip()


def _says(resp: requests.Response) -> str:
    """`: <code>: <message>` from a registry's JSON error body (never for a HEAD), the
    message left out when it only says what the status did."""
    if resp.request.method == "HEAD":
        return ""
    try:
        raw = next(resp.iter_content(_ERROR_BODY_MAX), b"")
        first = json.loads(raw)["errors"][0]
        code, message = str(first.get("code") or ""), str(first.get("message") or "")
    except (requests.RequestException, ValueError, LookupError, TypeError, AttributeError):
        return ""  # no body, or not the registry's error format
    if message.lower() in ("manifest unknown", "unauthorized", "too many requests", ""):
        message = ""
    text = re.sub(r"[^\x20-\x7e]", "?", ": ".join(t for t in (code, message) if t))[:200]
    return f": {text}" if text else ""
