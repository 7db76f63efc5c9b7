"""The registry adapter (sidecar.adapters.registry) against a real distribution registry
(`docker-registry`, started by testkit.registry on loopback) and, for what a real one will not
do on demand (429, 503, a token service), a scripted stand-in on http.server."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from loguru import logger

import sidecar.adapters.registry as registry_module
from sidecar.adapters.registry import (
    ManifestHead,
    Registries,
    RegistryAuth,
    docker_config_auths,
    endpoint,
    normalise_registry,
)
from sidecar.core.errors import RegistryError
from testkit import bcrypt
from testkit.registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Endpoint,
    LocalRegistry,
    digest_of,
    layer,
)
from testkit.wait import free_port, poll

MANIFEST = b'{"schemaVersion":2}'
DIGEST = digest_of(MANIFEST)


# --- a scripted stand-in ---------------------------------------------------------------------
@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class StandIn:
    """An HTTP server on loopback whose every answer is `answer(request)`; `seen` lists the
    requests in order."""

    def __init__(
        self,
        answer: Callable[[Seen], Answer],
        bind: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.seen: list[Seen] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                stand_in.seen.append(seen)
                got = answer(seen)
                self.send_response(got.status)
                for name, value in got.headers.items():
                    self.send_header(name, value)
                if got.headers.get("Connection") == "close":
                    self.close_connection = True  # the body ends with the connection
                elif "Content-Length" not in got.headers:
                    self.send_header("Content-Length", str(len(got.body)))
                self.end_headers()
                if self.command != "HEAD":
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.wfile.write(got.body)  # the client may stop reading

            do_GET = do_HEAD = do_POST = _serve

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((bind, 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        address, port = self.server.server_address[:2]
        return f"{address!s}:{port}"

    def paths(self, method: str | None = None) -> list[str]:
        return [s.path for s in self.seen if method is None or s.method == method]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[Callable[[Callable[[Seen], Answer]], StandIn]]:
    started: list[StandIn] = []

    def start(answer: Callable[[Seen], Answer]) -> StandIn:
        started.append(StandIn(answer))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def manifest_answer(body: bytes = MANIFEST, digest: str | None = None) -> Answer:
    return Answer(
        200,
        {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest or digest_of(body)},
        body,
    )


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    yield lines
    logger.remove(sink)


def fast(attempts: int = 3, auths: Mapping[str, RegistryAuth] | None = None) -> Registries:
    """A client that retries quickly (10 ms backoff)."""
    return Registries(auths, attempts=attempts, backoff_s=0.01, timeout_s=2.0)


# --- the real registry -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def notified() -> Iterator[StandIn]:
    hook = StandIn(lambda seen: Answer(200))
    yield hook
    hook.stop()


NOTIFY_TOKEN = "notify-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def registry(notified: StandIn) -> Iterator[LocalRegistry]:
    hook = Endpoint(
        "sidecar",
        f"http://{notified.host}/hooks/registry",
        headers={"Authorization": f"Bearer {NOTIFY_TOKEN}"},
        timeout_s=1,
        threshold=3,
        backoff_s=0.2,
    )
    with LocalRegistry(notify=[hook]) as reg:
        yield reg


@pytest.fixture(scope="module")
def client() -> Iterator[Registries]:
    regs = fast()  # no insecure listing: loopback is plain HTTP by itself
    yield regs
    regs.close()


def test_head_returns_the_digest_and_media_type_of_a_pushed_tag(
    registry: LocalRegistry, client: Registries
) -> None:
    digest = registry.push_image("team/web", "v1", layer({"index.html": b"one"}))
    head = client.head_manifest(registry.host, "team/web", "v1")
    assert head.digest == digest
    assert head.media_type == OCI_MANIFEST
    got, manifest = client.get_manifest(registry.host, "team/web", "v1")
    assert got == head
    assert head.size == len(json.dumps(manifest, separators=(",", ":"), sort_keys=True))
    assert client.head_manifest(registry.host, "team/web", digest) == head  # by digest

    docker = registry.push_image("team/web", "docker", b"layer", oci=False)
    head = client.head_manifest(registry.host, "team/web", "docker")
    assert (head.digest, head.media_type) == (docker, DOCKER_MANIFEST)


def test_a_new_push_of_the_tag_changes_the_digest(
    registry: LocalRegistry, client: Registries
) -> None:
    first = registry.push_image("team/api", "latest", layer({"v": b"1"}))
    assert client.head_manifest(registry.host, "team/api", "latest").digest == first
    second = registry.push_image("team/api", "latest", layer({"v": b"2"}))
    assert second != first
    assert client.head_manifest(registry.host, "team/api", "latest").digest == second


@pytest.mark.parametrize(("repository", "tag"), [("team/web", "nope"), ("team/nothing", "v1")])
def test_unknown_tag_or_repository_is_404(
    registry: LocalRegistry, client: Registries, repository: str, tag: str
) -> None:
    registry.push_image("team/web", "v1", layer({"index.html": b"one"}))
    for ask in (client.head_manifest, client.get_manifest):
        with pytest.raises(RegistryError) as err:
            ask(registry.host, repository, tag)
        assert (err.value.status, err.value.retryable) == (404, False)
        assert "manifest unknown" in str(err.value)
        assert registry.host in str(err.value) and f"{repository}:{tag}" in str(err.value)


def test_an_oci_index_with_two_platforms(registry: LocalRegistry, client: Registries) -> None:
    amd = registry.push_image("team/multi", "amd64", b"amd", platform=("linux", "amd64"))
    arm = registry.push_image("team/multi", "arm64", b"arm", platform=("linux", "arm64", "v8"))
    index = registry.push_index(
        "team/multi", "latest", {("linux", "amd64"): amd, ("linux", "arm64", "v8"): arm}
    )
    head = client.head_manifest(registry.host, "team/multi", "latest")
    assert (head.digest, head.media_type) == (index, OCI_INDEX)

    got, document = client.get_manifest(registry.host, "team/multi", "latest")
    assert got == head
    assert document["mediaType"] == OCI_INDEX
    entries = {(m["platform"]["architecture"], m["digest"]) for m in document["manifests"]}
    assert entries == {("amd64", amd), ("arm64", arm)}
    arm_entry = next(m for m in document["manifests"] if m["digest"] == arm)
    assert arm_entry["platform"] == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    # the caller then asks for the platform's manifest by digest
    child, manifest = client.get_manifest(registry.host, "team/multi", arm)
    assert (child.digest, child.media_type, child.size) == (arm, OCI_MANIFEST, arm_entry["size"])
    assert len(manifest["layers"]) == 1


def test_the_registry_notifies_its_endpoint_of_a_push(
    registry: LocalRegistry, notified: StandIn
) -> None:
    digest = registry.push_image("team/notify", "v1", b"n")

    def pushed() -> bool:
        for seen in list(notified.seen):
            events = json.loads(seen.body or b"{}").get("events", [])
            for event in events:
                target = event.get("target", {})
                if event.get("action") == "push" and target.get("digest") == digest:
                    return seen.headers.get("authorization") == f"Bearer {NOTIFY_TOKEN}"
        return False

    assert poll(pushed, 5), [s.body[:300] for s in notified.seen]
    assert notified.paths("POST")[0] == "/hooks/registry"


def test_threads_share_one_client(registry: LocalRegistry, client: Registries) -> None:
    digest = registry.push_image("team/shared", "v1", b"shared")
    found: list[str] = []

    def ask() -> None:
        for _ in range(5):
            found.append(client.head_manifest(registry.host, "team/shared", "v1").digest)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert found == [digest] * 40


# --- failures ----------------------------------------------------------------------------------
def test_a_registry_that_is_down_is_retried_then_retryable(log_lines: list[str]) -> None:
    closed = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(RegistryError) as err:
        fast(attempts=3).head_manifest(closed, "team/web", "v1")
    assert time.monotonic() - started < 3
    assert (err.value.status, err.value.retryable) == (0, True)
    assert "no answer (connection refused)" in str(err.value)
    assert "gave up after 3 attempts" in str(err.value)
    assert sum("failed (attempt 1/3)" in line for line in log_lines) == 1
    assert sum("failed (attempt 2/3)" in line for line in log_lines) == 1


def test_429_with_retry_after_is_waited_for_then_succeeds(stand_in: Callable[..., StandIn]) -> None:
    answers = iter([Answer(429, {"Retry-After": "1"})])
    server = stand_in(lambda seen: next(answers, manifest_answer()))
    started = time.monotonic()
    head = fast().head_manifest(server.host, "team/web", "v1")
    assert time.monotonic() - started >= 0.9  # Retry-After, not the 10 ms backoff
    assert head.digest == DIGEST
    assert server.paths("HEAD") == ["/v2/team/web/manifests/v1"] * 2
    accept = server.seen[0].headers["accept"]
    assert OCI_INDEX in accept and OCI_MANIFEST in accept and DOCKER_MANIFEST in accept


def test_5xx_is_retried_attempts_times(stand_in: Callable[..., StandIn]) -> None:
    server = stand_in(lambda seen: Answer(503))
    with pytest.raises(RegistryError) as err:
        fast(attempts=4).get_manifest(server.host, "team/web", "v1")
    assert (err.value.status, err.value.retryable) == (503, True)
    assert len(server.seen) == 4


def test_a_long_retry_after_is_not_waited_for(stand_in: Callable[..., StandIn]) -> None:
    server = stand_in(lambda seen: Answer(429, {"Retry-After": "120"}))
    started = time.monotonic()
    with pytest.raises(RegistryError) as err:
        fast(attempts=3).head_manifest(server.host, "team/web", "v1")
    assert time.monotonic() - started < 1
    assert (err.value.status, err.value.retryable) == (429, True)
    assert "retry after 120 s" in str(err.value)
    assert len(server.seen) == 1


def test_a_head_without_a_digest_asks_with_get(stand_in: Callable[..., StandIn]) -> None:
    body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
    server = stand_in(lambda seen: Answer(200, {"Content-Type": OCI_MANIFEST}, body))
    head = fast().head_manifest(server.host, "team/web", "v1")
    assert head == ManifestHead(digest_of(body), OCI_MANIFEST, len(body))
    assert [s.method for s in server.seen] == ["HEAD", "GET"]


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
def test_a_manifest_over_4_mib_is_refused(stand_in: Callable[..., StandIn], length: bool) -> None:
    big = b"{" + b" " * (4 * 1024 * 1024) + b"}"
    headers = {"Content-Type": OCI_MANIFEST} | ({} if length else {"Connection": "close"})
    server = stand_in(lambda seen: Answer(200, headers, big))
    with pytest.raises(RegistryError, match="over the cap") as err:
        fast().get_manifest(server.host, "team/web", "v1")
    assert not err.value.retryable


def test_a_body_that_is_not_the_digest_said_is_refused(stand_in: Callable[..., StandIn]) -> None:
    server = stand_in(lambda seen: manifest_answer(digest="sha256:" + "b" * 64))
    with pytest.raises(RegistryError, match="not sha256:bbbb"):
        fast().get_manifest(server.host, "team/web", "v1")


def own_address() -> str | None:
    """An address of this machine that is not loopback (so HTTPS is used), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if ipaddress.ip_address(address).is_loopback else address


def test_tls_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    address = own_address()
    if address is None or shutil.which("openssl") is None:
        pytest.skip("needs a non-loopback address and openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={address}"),
            *("-addext", f"subjectAltName=IP:{address}"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = StandIn(lambda seen: manifest_answer(), bind=address, tls=context)
    try:
        with pytest.raises(RegistryError, match=r"TLS failed .*certificate verify failed") as err:
            fast().head_manifest(server.host, "team/web", "v1")
        assert not err.value.retryable  # a certificate does not get better by asking again
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        assert fast().head_manifest(server.host, "team/web", "v1").digest == DIGEST
    finally:
        server.stop()


# --- authentication ----------------------------------------------------------------------------
class TokenService:
    """A registry behind a Bearer challenge, with its token endpoint on the same server."""

    def __init__(self, expires_in: int = 300) -> None:
        self.user = "robot"
        self.password = "pw-" + secrets.token_hex(8)
        self.token = "tok-" + secrets.token_hex(8)
        self.expires_in = expires_in
        self.host = ""
        self.scopes: list[list[str]] = []

    def answer(self, seen: Seen) -> Answer:
        if seen.path == "/token":
            basic = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            ok = seen.headers.get("authorization") == f"Basic {basic}"
            self.scopes.append(seen.query.get("scope", []))
            scope_ok = seen.query.get("scope") in (
                ["repository:team/web:pull"],
                ["repository:team/api:pull"],
            )
            if not (ok and scope_ok and seen.query.get("service") == ["stand-in"]):
                return Answer(401, {}, json.dumps({"details": f"no: {self.password}"}).encode())
            body = {"token": self.token, "expires_in": self.expires_in}
            return Answer(200, {"Content-Type": "application/json"}, json.dumps(body).encode())
        if seen.headers.get("authorization") == f"Bearer {self.token}":
            return manifest_answer()
        repository = seen.path.removeprefix("/v2/").split("/manifests/")[0]
        challenge = (
            f'Bearer realm="http://{self.host}/token",service="stand-in",'
            f'scope="repository:{repository}:pull"'
        )
        return Answer(401, {"WWW-Authenticate": challenge})

    def secrets(self) -> list[str]:
        basic = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return [self.password, self.token, basic]


def assert_clean(texts: list[str], hidden: list[str]) -> None:
    for text in texts:
        for secret in hidden:
            assert secret not in text, f"a secret in: {text}"


def test_a_bearer_challenge_is_answered_with_a_cached_token(
    stand_in: Callable[..., StandIn], log_lines: list[str]
) -> None:
    service = TokenService()
    server = stand_in(service.answer)
    service.host = server.host
    regs = fast(auths={server.host: RegistryAuth(service.user, service.password)})
    assert regs.head_manifest(server.host, "team/web", "v1").digest == DIGEST
    assert server.paths() == ["/v2/team/web/manifests/v1", "/token", "/v2/team/web/manifests/v1"]
    # the token is reused until it expires: one request per question now
    regs.head_manifest(server.host, "team/web", "v1")
    regs.get_manifest(server.host, "team/web", "v1")
    assert server.paths().count("/token") == 1 and len(server.seen) == 5
    # another repository: its own scope, straight from the token service (challenge known)
    regs.head_manifest(server.host, "team/api", "v1")
    assert server.paths()[5:] == ["/token", "/v2/team/api/manifests/v1"]
    assert service.scopes == [["repository:team/web:pull"], ["repository:team/api:pull"]]
    assert log_lines, "the requests are logged (at debug)"
    assert_clean([*log_lines, repr(regs), repr(regs.auths)], service.secrets())


def test_an_expired_token_is_fetched_again(stand_in: Callable[..., StandIn]) -> None:
    service = TokenService(expires_in=0)
    server = stand_in(service.answer)
    service.host = server.host
    regs = fast(auths={server.host: RegistryAuth(service.user, service.password)})
    for _ in range(2):
        regs.head_manifest(server.host, "team/web", "v1")
    # the second time the challenge is known: straight to the token service
    assert server.paths() == ["/v2/team/web/manifests/v1", "/token"] * 2 + [
        "/v2/team/web/manifests/v1"
    ]


def test_a_refused_token_is_401_and_says_no_secret(
    stand_in: Callable[..., StandIn], log_lines: list[str]
) -> None:
    service = TokenService()
    server = stand_in(service.answer)
    service.host = server.host
    wrong = "wrong-" + secrets.token_hex(8)
    regs = fast(auths={server.host: RegistryAuth(service.user, wrong)})
    with pytest.raises(RegistryError) as err:
        regs.head_manifest(server.host, "team/web", "v1")
    assert (err.value.status, err.value.retryable) == (401, False)
    assert "refused the credentials of robot" in str(err.value)
    basic = base64.b64encode(f"robot:{wrong}".encode()).decode()
    assert_clean([str(err.value), *log_lines], [*service.secrets(), wrong, basic])

    with pytest.raises(RegistryError) as err:
        fast().head_manifest(server.host, "team/web", "v1")  # no credentials at all
    assert err.value.status == 401 and "anonymous token" in str(err.value)


@pytest.fixture(scope="module")
def locked() -> Iterator[LocalRegistry]:
    with LocalRegistry(username="alice", password="pw-" + secrets.token_hex(8)) as reg:
        yield reg


def test_basic_auth_against_an_htpasswd_registry(
    locked: LocalRegistry, log_lines: list[str]
) -> None:
    digest = locked.push_image("private/app", "v1", b"secret layer")
    right = fast(auths={locked.host: RegistryAuth("alice", locked.password)})
    assert right.head_manifest(locked.host, "private/app", "v1").digest == digest
    assert right.get_manifest(locked.host, "private/app", "v1")[0].digest == digest

    wrong_password = "not-" + secrets.token_hex(8)
    wrong = fast(auths={locked.host: RegistryAuth("alice", wrong_password)})
    with pytest.raises(RegistryError) as err:
        wrong.head_manifest(locked.host, "private/app", "v1")
    assert (err.value.status, err.value.retryable) == (401, False)
    assert "as alice" in str(err.value)

    with pytest.raises(RegistryError) as none:
        fast().head_manifest(locked.host, "private/app", "v1")
    assert none.value.status == 401 and "asks for credentials" in str(none.value)
    assert_clean([str(err.value), str(none.value), *log_lines], [locked.password, wrong_password])


# --- names and configuration -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "registry", "url"),
    [
        ("docker.io", "docker.io", "https://registry-1.docker.io"),
        ("https://index.docker.io/v1/", "docker.io", "https://registry-1.docker.io"),
        ("registry-1.docker.io", "docker.io", "https://registry-1.docker.io"),
        ("ghcr.io", "ghcr.io", "https://ghcr.io"),
        ("https://GHCR.io", "ghcr.io", "https://ghcr.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("127.8.0.1:5000", "127.8.0.1:5000", "http://127.8.0.1:5000"),
        ("http://localhost:5000/v2/", "localhost:5000", "http://localhost:5000"),
        ("[::1]:5000", "[::1]:5000", "http://[::1]:5000"),
        ("registry.lan:5000", "registry.lan:5000", "http://registry.lan:5000"),  # listed
        ("10.1.2.3:5000", "10.1.2.3:5000", "http://10.1.2.3:5000"),  # in a listed CIDR
        ("10.9.2.3:5000", "10.9.2.3:5000", "https://10.9.2.3:5000"),
        ("registry.example:5000", "registry.example:5000", "https://registry.example:5000"),
    ],
)
def test_registry_names_and_endpoints(name: str, registry: str, url: str) -> None:
    assert normalise_registry(name) == registry
    assert endpoint(name, insecure=("registry.lan:5000", "10.1.0.0/16")) == url


def test_docker_hub_official_images_are_under_library() -> None:
    req = Registries()._request("HEAD", "docker.io", "nginx", "1.27")
    assert req.url == "https://registry-1.docker.io/v2/library/nginx/manifests/1.27"
    other = Registries()._request("HEAD", "ghcr.io", "nginx", "1")
    assert other.url == "https://ghcr.io/v2/nginx/manifests/1"


@pytest.mark.parametrize(
    ("repository", "reference"),
    [("../etc", "v1"), ("Team/Web", "v1"), ("team/web", "-x"), ("team/web", "a/b"), ("", "v1")],
)
def test_names_that_are_not_references_are_refused(repository: str, reference: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        Registries().head_manifest("127.0.0.1:1", repository, reference)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, {}),
        (
            {"auths": {"https://index.docker.io/v1/": {"auth": b64("bob:hub-pw")}}},
            {"docker.io": RegistryAuth("bob", "hub-pw")},
        ),
        (
            {"auths": {"127.0.0.1:5000": {"auth": b64("alice:a:b:c")}}},  # ':' in the password
            {"127.0.0.1:5000": RegistryAuth("alice", "a:b:c")},
        ),
        (
            {"auths": {"https://ghcr.io": {"username": "me", "password": "pat"}}},
            {"ghcr.io": RegistryAuth("me", "pat")},
        ),
        (
            {
                "auths": {
                    "quay.io": {},  # kept by the credential store
                    "bad.io": {"auth": "not base64!"},
                    "nocolon.io": {"auth": b64("justuser")},
                    "token.io": {"identitytoken": "refresh"},
                    "ok.io": {"auth": b64("u:p")},
                },
                "credsStore": "desktop",
                "credHelpers": {"gcr.io": "gcloud"},
            },
            {"ok.io": RegistryAuth("u", "p")},
        ),
        (
            {
                "auths": {
                    "docker.io": {"auth": b64("first:1")},
                    "https://index.docker.io/v1/": {"auth": b64("second:2")},
                }
            },
            {"docker.io": RegistryAuth("first", "1")},
        ),
    ],
)
def test_docker_config_auths(
    tmp_path: Path, config: dict[str, object], expected: dict[str, RegistryAuth]
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert docker_config_auths(path) == expected


def test_docker_config_auths_missing_or_broken(tmp_path: Path, log_lines: list[str]) -> None:
    assert docker_config_auths(tmp_path / "missing.json") == {}
    broken = tmp_path / "broken.json"
    broken.write_text('{"auths": {"x": {"auth": "c2VjcmV0"}')
    with pytest.raises(ValueError, match="not JSON") as err:
        docker_config_auths(broken)
    assert "c2VjcmV0" not in str(err.value)
    helpers = tmp_path / "helpers.json"
    helpers.write_text(json.dumps({"credsStore": "desktop", "auths": {"x.io": {}}}))
    assert docker_config_auths(helpers) == {}
    assert any("credential helpers are not used" in line for line in log_lines)


def test_a_password_is_not_in_repr() -> None:
    auth = RegistryAuth("alice", "s3cret-pw")
    assert "s3cret-pw" not in repr(auth)
    assert "s3cret-pw" not in repr(Registries(auths={"ghcr.io": auth}))


def test_the_test_kits_bcrypt_matches_openbsd() -> None:
    # vectors from OpenBSD's and the `bcrypt` package's test suites
    assert bcrypt.checkpw("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")
    assert bcrypt.checkpw("U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK")
    assert not bcrypt.checkpw("U*V", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")
    assert bcrypt.checkpw("pw", bcrypt.hashpw("pw"))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/nginx:pull"',
            (
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/nginx:pull",
                },
            ),
        ),
        ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
        (
            'Basic realm="x", Bearer realm="https://t/token",scope="repository:a:pull,push"',
            ("bearer", {"realm": "https://t/token", "scope": "repository:a:pull,push"}),
        ),
        ("bearer realm=https://t/token", ("bearer", {"realm": "https://t/token"})),
        ("Negotiate abc", None),
        ("", None),
    ],
)
def test_challenges(header: str, expected: tuple[str, dict[str, str]] | None) -> None:
    assert registry_module._challenge(header) == expected


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert registry_module._retry_after("7") == 7.0
    soon = registry_module._retry_after(formatdate(time.time() + 20, usegmt=True))
    assert soon is not None and 18 <= soon <= 21
    assert registry_module._retry_after(formatdate(time.time() - 20, usegmt=True)) == 0.0
    assert registry_module._retry_after("soon") is None
    assert registry_module._retry_after(None) is None


def test_a_restarted_registry_keeps_what_was_pushed(tmp_path: Path) -> None:
    with LocalRegistry(tmp_path / "registry") as reg:
        digest = reg.push_image("team/kept", "v1", b"kept")
        reg.restart()
        assert fast().head_manifest(reg.host, "team/kept", "v1").digest == digest
    assert (tmp_path / "registry" / "data").is_dir()  # a given directory is left to its owner
