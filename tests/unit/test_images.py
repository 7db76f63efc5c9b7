"""Images from a registry (sidecar.core.images): references, registry notifications, Docker
Hub webhooks, index entries by platform, drift and the services a push redeploys, as tables
of plain data.

The notification events were recorded from Debian's docker-registry 2.8.2 (the CNCF
distribution registry) on loopback: blobs and a manifest pushed to team/web, the manifest
tagged v2 and pushed again by digest, an OCI index tagged multi, a pull of v2. The registry
sent one envelope per event; the tests join them."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.images import (
    DEFAULT_REGISTRY,
    INDEX_TYPES,
    MANIFEST_ACCEPT,
    MANIFEST_TYPES,
    Drift,
    ImageError,
    ImageRef,
    Platform,
    RegistryPush,
    drift_of,
    local_platform,
    matching_services,
    parse_dockerhub,
    parse_ref,
    parse_registry_envelope,
    platform_entry,
    same_tag,
)

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64
D = "sha256:" + "d" * 64

# --- parse_ref -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "canonical"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", "", "docker.io/library/nginx:latest"),
        ("nginx:1.25-alpine", "docker.io", "library/nginx", "1.25-alpine", "", None),
        ("user/app:1.2", "docker.io", "user/app", "1.2", "", "docker.io/user/app:1.2"),
        ("docker.io/user/app", "docker.io", "user/app", "latest", "", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", "", None),
        ("index.docker.io/library/nginx", "docker.io", "library/nginx", "latest", "", None),
        ("registry-1.docker.io/nginx", "docker.io", "library/nginx", "latest", "", None),
        ("ghcr.io/o/r:tag", "ghcr.io", "o/r", "tag", "", "ghcr.io/o/r:tag"),
        ("GHCR.io/o/r", "ghcr.io", "o/r", "latest", "", None),
        ("localhost/x", "localhost", "x", "latest", "", "localhost/x:latest"),
        ("localhost:5000/x", "localhost:5000", "x", "latest", "", None),
        # the port belongs to the registry, not a tag
        ("127.0.0.1:5000/web", "127.0.0.1:5000", "web", "latest", "", None),
        ("127.0.0.1:5000/web:v2", "127.0.0.1:5000", "web", "v2", "", None),
        ("[::1]:5000/team/web:v2", "[::1]:5000", "team/web", "v2", "", None),
        ("registry.example.com/a/b/c", "registry.example.com", "a/b/c", "latest", "", None),
        # one component is never a registry: web:5000 is tag 5000
        ("web:5000", "docker.io", "library/web", "5000", "", None),
        ("my_org/my-app__x.y", "docker.io", "my_org/my-app__x.y", "latest", "", None),
        (f"web@{A}", "docker.io", "library/web", "", A, f"docker.io/library/web@{A}"),
        (f"web:v1@{A}", "docker.io", "library/web", "v1", A, f"docker.io/library/web:v1@{A}"),
        (f"127.0.0.1:5000/web:v1@{A}", "127.0.0.1:5000", "web", "v1", A, None),
        ("web@sha512:" + "e" * 128, "docker.io", "library/web", "", "sha512:" + "e" * 128, None),
    ],
)
def test_parse_ref(
    text: str, registry: str, repository: str, tag: str, digest: str, canonical: str | None
) -> None:
    ref = parse_ref(text)
    assert ref == ImageRef(registry, repository, tag, digest)
    assert ref.name == f"{registry}/{repository}"
    if canonical is not None:
        assert str(ref) == canonical
    assert parse_ref(str(ref)) == ref


def test_index_docker_io_is_docker_io() -> None:
    assert parse_ref("index.docker.io/library/nginx") == parse_ref("nginx")
    assert parse_ref("docker.io/library/nginx:latest") == parse_ref("nginx")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("UPPER/x", "lowercase"),
        ("team/Web", "lowercase"),
        ("a b", "not a repository name"),
        (" nginx", "not a repository name"),
        ("nginx\n", "not a repository name"),
        ("web@sha256:short", "not a digest"),
        (f"web@sha256:{'A' * 64}", "not a digest"),
        (f"web@md5:{'a' * 64}", "not a digest"),
        ("web@", "nothing after '@'"),
        ("", "empty"),
        (":tag", "no repository"),
        ("web:", "nothing after ':'"),
        ("web:v1:v2", "not a tag"),
        ("web:-v1", "not a tag"),
        ("web:" + "t" * 129, "not a tag"),
        ("a//b", "not a repository name"),
        ("-web", "not a repository name"),
        ("web-", "not a repository name"),
        ("a" * 64, "image id"),
        ("bad_host.example.com/x", "not a registry host"),
        ("host:port/x", "not a registry host"),
        ("example.com/", "no repository"),
        ("x" * 250 + "/y/z", "longer than 255"),
        ("x" * 2000, "characters"),
    ],
)
def test_parse_ref_refuses(text: str, says: str) -> None:
    with pytest.raises(ImageError, match=says):
        parse_ref(text)


def test_parse_ref_refuses_what_is_not_text() -> None:
    for junk in (None, 5, b"nginx", ["nginx"]):
        with pytest.raises(ImageError):
            parse_ref(junk)  # type: ignore[arg-type]


REF_CHARS = st.sampled_from([*"abcz09./:@-_A ", "sha256:" + "a" * 64, "localhost"])


@given(st.text(max_size=40) | st.lists(REF_CHARS, max_size=12).map("".join))
def test_parse_ref_only_raises_image_error_and_is_idempotent(text: str) -> None:
    try:
        ref = parse_ref(text)
    except ImageError:
        return
    assert parse_ref(str(ref)) == ref
    assert ref.tag or ref.digest


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (ImageRef("docker.io", "library/nginx", "latest"), parse_ref("nginx"), True),
        (ImageRef("index.docker.io", "nginx", "latest"), parse_ref("nginx"), True),
        (ImageRef("registry-1.docker.io", "library/nginx"), parse_ref("nginx:latest"), True),
        (parse_ref(f"nginx:latest@{A}"), parse_ref("nginx"), True),  # digests ignored
        (parse_ref("nginx:1.25"), parse_ref("nginx"), False),
        (parse_ref("ghcr.io/library/nginx"), parse_ref("nginx"), False),
        (parse_ref("localhost:5000/web"), parse_ref("127.0.0.1:5000/web"), False),
        (parse_ref("127.0.0.1:5000/web:v2"), parse_ref("127.0.0.1:5000/web:v2"), True),
        (parse_ref(f"web@{A}"), parse_ref("web"), False),  # no tag vs latest
    ],
)
def test_same_tag(a: ImageRef, b: ImageRef, same: bool) -> None:
    assert same_tag(a, b) is same
    assert same_tag(b, a) is same


# --- registry notifications ------------------------------------------------------------

REGISTRY = "127.0.0.1:25731"
INSTANCE = "967726d8-f406-4ca8-87f2-6dff0ed402fa"
LAYER = "sha256:3997bfa39738f279d788e49d0cc743d02a512c8855f798b3ee1c0daf589a6b9a"
MANIFEST = "sha256:7a0f7788f9cacfcb334bbb5d5ffacc0b02aa36e460e47d2abaee78b08ad00fb2"
INDEX = "sha256:90de585387369e7b1669d20a19e0595df2dd811cf2130d468bbe66e4445f562b"


def _event(
    event_id: str, action: str, target: dict[str, Any], method: str, request_id: str, port: int
) -> dict[str, Any]:
    return {
        "id": event_id,
        "timestamp": "2026-12-02T04:40:05.570602933Z",
        "action": action,
        "target": target,
        "request": {
            "id": request_id,
            "addr": f"127.0.0.1:{port}",
            "host": REGISTRY,
            "method": method,
            "useragent": "Python-urllib/3.11",
        },
        "actor": {},
        "source": {"addr": "vm:25731", "instanceID": INSTANCE},
    }


MANIFEST_PUSH = _event(
    "44129fe9-00af-459a-91a7-3843e9826620",
    "push",
    {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 438,
        "digest": MANIFEST,
        "length": 438,
        "repository": "team/web",
        "url": f"http://{REGISTRY}/v2/team/web/manifests/{MANIFEST}",
        "tag": "v2",
    },
    "PUT",
    "6005aff1-e164-4d7a-8b56-1846d3ed1d55",
    41814,
)
BLOB_PUSH = _event(
    "ed47b32d-41dc-4cad-865e-06bccbbfd620",
    "push",
    {
        "mediaType": "application/octet-stream",
        "size": 11,
        "digest": LAYER,
        "length": 11,
        "repository": "team/web",
        "url": f"http://{REGISTRY}/v2/team/web/blobs/{LAYER}",
    },
    "PUT",
    "f83d4f39-a3c2-4d7f-bd78-6ced6116b36d",
    41786,
)
PULL = _event(
    "fd766027-6794-45eb-89ec-99862e38b0b3",
    "pull",
    {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 438,
        "digest": MANIFEST,
        "length": 438,
        "repository": "team/web",
        "url": f"http://{REGISTRY}/v2/team/web/manifests/{MANIFEST}",
        "tag": "v2",
    },
    "GET",
    "a1f0ff06-4ab1-4c37-b684-c3e93671eae4",
    41842,
)
INDEX_PUSH = _event(
    "45a087ba-a47b-4e87-a693-2de40d6f9911",
    "push",
    {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "size": 314,
        "digest": INDEX,
        "length": 314,
        "repository": "team/web",
        "url": f"http://{REGISTRY}/v2/team/web/manifests/{INDEX}",
        "tag": "multi",
    },
    "PUT",
    "ca91254d-a99b-48f9-b9f0-6881044b8de6",
    41820,
)
# the same manifest pushed again by digest: no tag
DIGEST_PUSH = _event(
    "bbb40b22-9f94-4fca-923c-81f111eb917b",
    "push",
    {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 438,
        "digest": MANIFEST,
        "length": 438,
        "repository": "team/web",
        "url": f"http://{REGISTRY}/v2/team/web/manifests/{MANIFEST}",
    },
    "PUT",
    "1ba5fce1-a868-4190-ac4e-7262aa8b4e11",
    41828,
)


def _body(*events: object) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def _without_host(event: dict[str, Any]) -> dict[str, Any]:
    request = {k: v for k, v in event["request"].items() if k != "host"}
    return {**event, "request": request}


def test_the_recorded_envelope_is_one_push() -> None:
    pushes, skipped = parse_registry_envelope(_body(MANIFEST_PUSH, BLOB_PUSH, PULL))
    assert pushes == [
        RegistryPush(
            ImageRef(REGISTRY, "team/web", "v2"),
            MANIFEST,
            "44129fe9-00af-459a-91a7-3843e9826620",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
    ]
    assert len(skipped) == 2
    assert skipped[0].startswith("event 2: push of team/web (sha256:3997bfa39738...)")
    assert "not an image manifest" in skipped[0]
    assert skipped[1] == "event 3: pull of team/web:v2 (sha256:7a0f7788f9ca...): not a push"


@pytest.mark.parametrize(
    ("event", "registry_host", "push", "skipped"),
    [
        (
            INDEX_PUSH,
            "",
            RegistryPush(
                ImageRef(REGISTRY, "team/web", "multi"),
                INDEX,
                "45a087ba-a47b-4e87-a693-2de40d6f9911",
                "application/vnd.oci.image.index.v1+json",
            ),
            None,
        ),
        (DIGEST_PUSH, "", None, "pushed by digest, no tag"),
        (BLOB_PUSH, "", None, "'application/octet-stream' is not an image manifest"),
        (PULL, "", None, "not a push"),
        ({**MANIFEST_PUSH, "action": "delete"}, "", None, "not a push"),
        ({**MANIFEST_PUSH, "action": "mount"}, "", None, "not a push"),
        ({**MANIFEST_PUSH, "action": None}, "", None, "no action"),
        # request.host missing: the registry host the sidecar was given
        (
            _without_host(MANIFEST_PUSH),
            "registry.internal:5000",
            RegistryPush(
                ImageRef("registry.internal:5000", "team/web", "v2"),
                MANIFEST,
                "44129fe9-00af-459a-91a7-3843e9826620",
                "application/vnd.docker.distribution.manifest.v2+json",
            ),
            None,
        ),
        ({**MANIFEST_PUSH, "request": None}, "", None, "no request.host"),
        (_without_host(MANIFEST_PUSH), "", None, "no request.host"),
        (_without_host(MANIFEST_PUSH), "not a host!", None, "not a registry host"),
        (_without_host(MANIFEST_PUSH), "a" * 300, None, "not a registry host"),
        (
            {**MANIFEST_PUSH, "request": {**MANIFEST_PUSH["request"], "host": "REG.example:5000"}},
            "other:1",
            RegistryPush(
                ImageRef("reg.example:5000", "team/web", "v2"),
                MANIFEST,
                "44129fe9-00af-459a-91a7-3843e9826620",
                "application/vnd.docker.distribution.manifest.v2+json",
            ),
            None,
        ),
        (
            {**MANIFEST_PUSH, "target": {**MANIFEST_PUSH["target"], "repository": "Team/web"}},
            "",
            None,
            "must be lowercase",
        ),
        (
            {**MANIFEST_PUSH, "target": {**MANIFEST_PUSH["target"], "tag": "v 2"}},
            "",
            None,
            "is not a tag",
        ),
        (
            {**MANIFEST_PUSH, "target": {**MANIFEST_PUSH["target"], "digest": "sha256:12"}},
            "",
            None,
            "no valid digest",
        ),
        ({**MANIFEST_PUSH, "target": "team/web"}, "", None, "without a target"),
        ("push", "", None, "a JSON str, not an event"),
    ],
)
def test_envelope_events(
    event: Any, registry_host: str, push: RegistryPush | None, skipped: str | None
) -> None:
    pushes, reasons = parse_registry_envelope(_body(event), registry_host)
    if push is not None:
        assert (pushes, reasons) == ([push], [])
    else:
        assert pushes == []
        assert len(reasons) == 1
        assert reasons[0].startswith("event 1: ")
        assert skipped is not None
        assert skipped in reasons[0]


def test_an_empty_envelope_is_nothing() -> None:
    assert parse_registry_envelope(b'{"events": []}') == ([], [])


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"events"',
        b"{}",
        b'{"events": null}',
        b'{"events": {"id": "x"}}',
        b"[" * 100_000,
        json.dumps({"push_data": {"tag": "latest"}, "repository": {}}).encode(),
    ],
)
def test_what_is_not_an_envelope(body: bytes) -> None:
    with pytest.raises(ImageError):
        parse_registry_envelope(body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
EVENT_KEYS = st.sampled_from(["id", "action", "target", "request", "tag", "host", "mediaType"])
EVENTISH = st.dictionaries(
    EVENT_KEYS,
    JSON
    | st.sampled_from(["push", *MANIFEST_ACCEPT, "team/web", "v2", A, REGISTRY])
    | st.dictionaries(
        st.sampled_from(["mediaType", "digest", "repository", "tag", "host"]),
        st.sampled_from([*MANIFEST_ACCEPT, "team/web", "Team/Web", "v2", "", A, REGISTRY]) | JSON,
    ),
)


@given(st.binary(max_size=200))
def test_junk_bytes_raise_only_image_error(body: bytes) -> None:
    for parse in (parse_registry_envelope, parse_dockerhub):
        with contextlib.suppress(ImageError):
            parse(body)


@given(st.lists(EVENTISH | JSON, max_size=5), st.text(max_size=20))
def test_junk_events_are_skipped_never_raise(events: list[Any], registry_host: str) -> None:
    pushes, skipped = parse_registry_envelope(_body(*events), registry_host)
    assert len(pushes) + len(skipped) == len(events)
    for push in pushes:
        assert parse_ref(str(push.ref)) == push.ref
        assert push.media_type in MANIFEST_TYPES | INDEX_TYPES


# --- Docker Hub ------------------------------------------------------------------------

# the example in Docker Hub's documentation ("Webhooks")
HUB: dict[str, Any] = {
    "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
    "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "latest"},
    "repository": {
        "comment_count": 0,
        "date_created": 1417494799,
        "description": "",
        "dockerfile": "#\n# BUILD\t\tdocker build -t svendowideit/apt-cacher .\n",
        "full_description": "Docker Hub based automated build from a GitHub repo",
        "is_official": False,
        "is_private": True,
        "is_trusted": True,
        "name": "testhook",
        "namespace": "svendowideit",
        "owner": "svendowideit",
        "repo_name": "svendowideit/testhook",
        "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/",
        "star_count": 0,
        "status": "Active",
    },
}


def _hub(tag: object = "latest", **repository: object) -> bytes:
    payload = {**HUB, "push_data": {**HUB["push_data"], "tag": tag}}
    payload["repository"] = {**HUB["repository"], **repository}
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("body", "ref"),
    [
        (json.dumps(HUB).encode(), "docker.io/svendowideit/testhook:latest"),
        (_hub("1.2.3"), "docker.io/svendowideit/testhook:1.2.3"),
        (
            _hub(repo_name="library/nginx", namespace="library", name="nginx"),
            "docker.io/library/nginx:latest",
        ),
        (_hub(repo_name="nginx", namespace="library", name="nginx"), "docker.io/library/nginx"),
        # no repo_name: namespace/name
        (_hub(repo_name=None), "docker.io/svendowideit/testhook:latest"),
        (_hub(repo_name=""), "docker.io/svendowideit/testhook:latest"),
    ],
)
def test_dockerhub(body: bytes, ref: str) -> None:
    push = parse_dockerhub(body)
    assert push == RegistryPush(parse_ref(ref), "", "", "")
    assert push.ref.registry == DEFAULT_REGISTRY


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"nope", "not JSON"),
        (b"[]", "not an object"),
        (b"{}", "no push_data"),
        (_body(MANIFEST_PUSH), "no push_data"),
        (_hub(None), "without push_data.tag"),
        (_hub(""), "without push_data.tag"),
        (_hub("bad tag"), "not a tag"),
        (_hub(repo_name=None, namespace=None), "names no repository"),
        (_hub(repo_name="SvenDowideit/testhook"), "lowercase"),
        (_hub(repo_name="a//b"), "not a repository name"),
    ],
)
def test_dockerhub_refuses(body: bytes, says: str) -> None:
    with pytest.raises(ImageError, match=says):
        parse_dockerhub(body)


@given(
    st.dictionaries(
        st.sampled_from(["push_data", "repository", "callback_url"]),
        JSON
        | st.dictionaries(
            st.sampled_from(["tag", "repo_name", "namespace", "name"]),
            st.sampled_from(["latest", "a/b", "library", "x", "", "A B"]) | JSON,
        ),
    )
)
def test_dockerhub_junk_raises_only_image_error(payload: dict[str, Any]) -> None:
    try:
        push = parse_dockerhub(json.dumps(payload).encode())
    except ImageError:
        return
    assert push.ref.registry == DEFAULT_REGISTRY and push.ref.tag


# --- matching_services -----------------------------------------------------------------


def _push(ref: str) -> RegistryPush:
    return RegistryPush(parse_ref(ref), A, "e1", "application/vnd.oci.image.index.v1+json")


@pytest.mark.parametrize(
    ("push", "services", "names"),
    [
        (
            "127.0.0.1:5000/web:v2",
            {"web": "127.0.0.1:5000/web:v2", "worker": "127.0.0.1:5000/web:v2", "db": "redis:7"},
            ["web", "worker"],
        ),
        # tag mismatch, and latest is not any tag
        ("127.0.0.1:5000/web:v2", {"web": "127.0.0.1:5000/web:v1"}, []),
        ("127.0.0.1:5000/web:latest", {"web": "127.0.0.1:5000/web"}, ["web"]),
        ("127.0.0.1:5000/web:v2", {"web": "127.0.0.1:5000/web"}, []),
        # registry mismatch: another registry, Docker Hub, a loopback alias
        ("127.0.0.1:5000/web:v2", {"web": "127.0.0.1:5001/web:v2"}, []),
        ("127.0.0.1:5000/web:v2", {"web": "web:v2"}, []),
        ("127.0.0.1:5000/web:v2", {"web": "localhost:5000/web:v2"}, []),
        ("127.0.0.1:5000/team/web:v2", {"web": "127.0.0.1:5000/web:v2"}, []),
        # Docker Hub's spellings of one repository
        (
            "docker.io/library/nginx:latest",
            {
                "a": "nginx",
                "b": "nginx:latest",
                "c": "docker.io/nginx",
                "d": "index.docker.io/library/nginx:latest",
                "e": "registry-1.docker.io/library/nginx",
                "f": "nginx:1.25",
                "g": "ghcr.io/library/nginx",
            },
            ["a", "b", "c", "d", "e"],
        ),
        ("docker.io/acme/api:1.0", {"api": "acme/api:1.0", "other": "acme/api2:1.0"}, ["api"]),
        # pinned by digest: never redeployed by a tag push, even the pushed digest
        (
            "127.0.0.1:5000/web:v2",
            {"pinned": f"127.0.0.1:5000/web:v2@{A}", "bare": f"127.0.0.1:5000/web@{A}"},
            [],
        ),
        # an image that is not a reference matches nothing
        ("127.0.0.1:5000/web:v2", {"broken": "Web:V2", "web": "127.0.0.1:5000/web:v2"}, ["web"]),
        ("127.0.0.1:5000/web:v2", {}, []),
    ],
)
def test_matching_services(push: str, services: dict[str, str], names: list[str]) -> None:
    assert matching_services(_push(push), services) == names


# --- platforms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "system", "platform"),
    [
        ("x86_64", "Linux", Platform("linux", "amd64")),
        ("amd64", "Linux", Platform("linux", "amd64")),
        ("AMD64", "Windows", Platform("windows", "amd64")),
        ("aarch64", "Linux", Platform("linux", "arm64", "v8")),
        ("arm64", "Darwin", Platform("darwin", "arm64", "v8")),
        ("armv7l", "Linux", Platform("linux", "arm", "v7")),
        ("armv6l", "Linux", Platform("linux", "arm", "v6")),
        ("armv5tel", "Linux", Platform("linux", "arm", "v5")),
        ("armv8l", "Linux", Platform("linux", "arm", "v8")),
        ("i686", "Linux", Platform("linux", "386")),
        ("i386", "Linux", Platform("linux", "386")),
        ("ppc64le", "Linux", Platform("linux", "ppc64le")),
        ("s390x", "Linux", Platform("linux", "s390x")),
        ("riscv64", "Linux", Platform("linux", "riscv64")),
        ("loongarch64", "Linux", Platform("linux", "loong64")),
        ("x86_64", "", Platform("linux", "amd64")),
    ],
)
def test_local_platform(machine: str, system: str, platform: Platform) -> None:
    assert local_platform(machine, system) == platform


def test_local_platform_defaults_to_linux() -> None:
    assert local_platform("aarch64") == Platform("linux", "arm64", "v8")
    assert str(local_platform("aarch64")) == "linux/arm64/v8"


# shaped like what buildx pushes for --platform linux/amd64,linux/arm64 with provenance
OCI_INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": A,
            "size": 1052,
            "platform": {"architecture": "amd64", "os": "linux"},
        },
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": B,
            "size": 1052,
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        },
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": C,
            "size": 566,
            "annotations": {
                "vnd.docker.reference.digest": A,
                "vnd.docker.reference.type": "attestation-manifest",
            },
            "platform": {"architecture": "unknown", "os": "unknown"},
        },
    ],
}


AMD64 = {"os": "linux", "architecture": "amd64"}


def _index(*platforms: dict[str, str], digests: tuple[str, ...] = (A, B, C, D)) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": d,
             "size": 528, "platform": p}
            for d, p in zip(digests, platforms, strict=False)
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("index", "want", "digest"),
    [
        (OCI_INDEX, Platform("linux", "amd64"), A),
        (OCI_INDEX, Platform("linux", "arm64", "v8"), B),
        (OCI_INDEX, Platform("linux", "arm64"), B),
        (OCI_INDEX, Platform("linux", "arm", "v7"), None),
        (OCI_INDEX, Platform("windows", "amd64"), None),
        (OCI_INDEX, Platform("unknown", "unknown"), None),  # the attestation is no image
        # an arm64 entry without variant is arm64/v8
        (_index({"os": "linux", "architecture": "arm64"}), Platform("linux", "arm64", "v8"), A),
        # ... but an exact variant wins wherever it is
        (
            _index(
                {"os": "linux", "architecture": "arm64"},
                {"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
            Platform("linux", "arm64", "v8"),
            B,
        ),
        # the variant counts elsewhere
        (
            _index(
                {"os": "linux", "architecture": "arm", "variant": "v6"},
                {"os": "linux", "architecture": "arm", "variant": "v7"},
            ),
            Platform("linux", "arm", "v7"),
            B,
        ),
        (_index({"os": "linux", "architecture": "arm"}), Platform("linux", "arm", "v7"), None),
        (
            _index({"os": "linux", "architecture": "arm", "variant": "v6"}),
            Platform("linux", "arm", "v7"),
            None,
        ),
        # no variant asked: the first of the architecture
        (
            _index({"os": "linux", "architecture": "arm", "variant": "v7"}),
            Platform("linux", "arm"),
            A,
        ),
        (
            _index({"os": "linux", "architecture": "arm64", "variant": "8"}),
            Platform("linux", "arm64", "v8"),
            A,
        ),
        (_index({"os": "Linux", "architecture": "AMD64"}), Platform("linux", "amd64"), A),
        (_index({"os": "linux", "architecture": "x86_64"}), Platform("linux", "amd64"), A),
        # an attestation named only by its annotation, or only by unknown/unknown
        (
            {
                "manifests": [
                    {
                        "digest": A,
                        "platform": AMD64,
                        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
                    },
                    {"digest": B, "platform": AMD64},
                ]
            },
            Platform("linux", "amd64"),
            B,
        ),
        # entries that are not entries
        (
            {
                "manifests": [
                    None,
                    "x",
                    {"digest": "sha256:12", "platform": AMD64},
                    {"digest": A},
                    {"digest": B, "platform": AMD64},
                ]
            },
            Platform("linux", "amd64"),
            B,
        ),
        ({"schemaVersion": 2, "config": {}, "layers": []}, Platform("linux", "amd64"), None),
        ({"manifests": {"digest": A}}, Platform("linux", "amd64"), None),
    ],
)
def test_platform_entry(index: dict[str, Any], want: Platform, digest: str | None) -> None:
    assert platform_entry(index, want) == digest


@given(JSON, st.sampled_from([Platform("linux", "amd64"), Platform("linux", "arm64", "v8")]))
def test_platform_entry_never_raises(index: Any, want: Platform) -> None:
    result = platform_entry({"manifests": index} if isinstance(index, list) else index, want)
    assert result is None or result.startswith("sha256:")


def test_manifest_media_types() -> None:
    assert MANIFEST_ACCEPT == (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
    assert set(MANIFEST_ACCEPT) == INDEX_TYPES | MANIFEST_TYPES
    assert not INDEX_TYPES & MANIFEST_TYPES


# --- drift_of --------------------------------------------------------------------------

WEB = parse_ref("127.0.0.1:5000/web:v2")
NGINX = parse_ref("nginx:1.25")


@pytest.mark.parametrize(
    ("ref", "repo_digests", "remote", "platform", "error", "drift"),
    [
        # equal
        (WEB, [f"127.0.0.1:5000/web@{A}"], A, None, "",
         Drift("svc", "127.0.0.1:5000/web:v2", A, A, False, "up to date")),
        # drifted
        (WEB, [f"127.0.0.1:5000/web@{A}"], B, None, "",
         Drift("svc", "127.0.0.1:5000/web:v2", A, B, True,
               "registry has sha256:bbbbbbbbbbbb..., running sha256:aaaaaaaaaaaa...")),
        # an index: running is this platform's entry
        (WEB, [f"127.0.0.1:5000/web@{C}"], B, C, "",
         Drift("svc", "127.0.0.1:5000/web:v2", C, B, False, "up to date")),
        # an index: running is the index itself
        (WEB, [f"127.0.0.1:5000/web@{B}"], B, C, "",
         Drift("svc", "127.0.0.1:5000/web:v2", B, B, False, "up to date")),
        (WEB, [f"127.0.0.1:5000/web@{A}"], B, C, "",
         Drift("svc", "127.0.0.1:5000/web:v2", A, B, True,
               "registry has sha256:bbbbbbbbbbbb... (sha256:cccccccccccc... for this platform), "
               "running sha256:aaaaaaaaaaaa...")),
        # Docker's familiar form for Docker Hub; other repositories' digests ignored
        (NGINX, [f"127.0.0.1:5000/web@{B}", f"nginx@{A}"], A, None, "",
         Drift("svc", "docker.io/library/nginx:1.25", A, A, False, "up to date")),
        (NGINX, [f"docker.io/library/nginx@{D}", f"nginx@{A}"], A, None, "",
         Drift("svc", "docker.io/library/nginx:1.25", A, A, False, "up to date")),
        # no repo digest (built or loaded locally), or none for this repository
        (WEB, [], A, None, "",
         Drift("svc", "127.0.0.1:5000/web:v2", "", A, False,
               "not pulled from a registry (no repo digest)")),
        (WEB, [f"localhost:5000/web@{A}", "garbage", f"web@{A}"], A, None, "",
         Drift("svc", "127.0.0.1:5000/web:v2", "", A, False,
               "not pulled from a registry (no repo digest)")),
        # the registry could not be asked
        (WEB, [f"127.0.0.1:5000/web@{A}"], None, None, "connection refused",
         Drift("svc", "127.0.0.1:5000/web:v2", A, "", False,
               "registry unreachable: connection refused")),
        # the registry has no such tag
        (WEB, [f"127.0.0.1:5000/web@{A}"], None, None, "",
         Drift("svc", "127.0.0.1:5000/web:v2", A, "", False, "the registry has no tag 'v2'")),
        # pinned by digest: the pin is what should run, the registry is not needed
        (parse_ref(f"127.0.0.1:5000/web@{A}"), [f"127.0.0.1:5000/web@{A}"], None, None, "down",
         Drift("svc", f"127.0.0.1:5000/web@{A}", A, A, False, "up to date")),
        (parse_ref(f"127.0.0.1:5000/web:v2@{A}"), [f"127.0.0.1:5000/web@{B}"], None, None, "",
         Drift("svc", f"127.0.0.1:5000/web:v2@{A}", B, A, True,
               "pinned to sha256:aaaaaaaaaaaa..., running sha256:bbbbbbbbbbbb...")),
    ],
)  # fmt: skip
def test_drift_of(
    ref: ImageRef,
    repo_digests: list[str],
    remote: str | None,
    platform: str | None,
    error: str,
    drift: Drift,
) -> None:
    assert drift_of("svc", ref, repo_digests, remote, platform, error) == drift
