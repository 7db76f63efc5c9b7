"""Push webhooks (sidecar.core.hooks): signatures, payloads, repository identities and
matching, as tables of plain data. The payloads are shaped like the ones GitHub, Gitea and
GitLab send (trimmed of the fields nothing reads)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.hooks import (
    DELIVERY_CAP,
    PROVIDERS,
    ZERO,
    Delivery,
    HookError,
    Ignored,
    Ping,
    Push,
    delivery_id,
    header,
    matches,
    normalise_repository,
    parse,
    push_fields,
    push_from_fields,
    sign,
    verify,
)

# GitHub's documented test vector ("Validating webhook deliveries")
GH_SECRET = "It's a Secret to Everybody"
GH_BODY = b"Hello, World!"
GH_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
GH_HEX = GH_SIGNATURE.removeprefix("sha256=")

BEFORE = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
AFTER = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

GITHUB_PUSH: dict[str, Any] = {
    "ref": "refs/heads/main",
    "before": BEFORE,
    "after": AFTER,
    "created": False,
    "deleted": False,
    "forced": False,
    "base_ref": None,
    "compare": f"https://github.com/acme/shop/compare/{BEFORE[:12]}...{AFTER[:12]}",
    "commits": [
        {
            "id": AFTER,
            "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
            "distinct": True,
            "message": "checkout: retry the payment call",
            "timestamp": "2024-05-02T10:14:31+02:00",
            "url": f"https://github.com/acme/shop/commit/{AFTER}",
            "author": {"name": "Ana", "email": "ana@example.com", "username": "ana"},
            "added": [],
            "removed": [],
            "modified": ["checkout/pay.py"],
        }
    ],
    "head_commit": {"id": AFTER, "message": "checkout: retry the payment call"},
    "repository": {
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": "shop",
        "full_name": "acme/shop",
        "private": True,
        "owner": {"name": "acme", "login": "acme", "id": 21031067},
        "html_url": "https://github.com/acme/shop",
        "url": "https://github.com/acme/shop",
        "git_url": "git://github.com/acme/shop.git",
        "ssh_url": "git@github.com:acme/shop.git",
        "clone_url": "https://github.com/acme/shop.git",
        "svn_url": "https://github.com/acme/shop",
        "default_branch": "main",
        "master_branch": "main",
    },
    "pusher": {"name": "ana", "email": "ana@example.com"},
    "sender": {"login": "ana", "id": 6752317, "type": "User"},
}
GITHUB_PING: dict[str, Any] = {
    "zen": "Design for failure.",
    "hook_id": 479028102,
    "hook": {"type": "Repository", "id": 479028102, "events": ["push"], "active": True},
    "repository": GITHUB_PUSH["repository"],
    "sender": GITHUB_PUSH["sender"],
}
GITHUB_ISSUES: dict[str, Any] = {
    "action": "opened",
    "issue": {"number": 7, "title": "checkout is slow"},
    "repository": GITHUB_PUSH["repository"],
}

GITEA_PUSH: dict[str, Any] = {
    "ref": "refs/heads/develop",
    "before": BEFORE,
    "after": AFTER,
    "compare_url": f"https://git.example.org/acme/shop/compare/{BEFORE}...{AFTER}",
    "commits": [
        {
            "id": AFTER,
            "message": "Webhooks Yay!\n",
            "url": f"https://git.example.org/acme/shop/commit/{AFTER}",
            "author": {"name": "Gitea", "email": "someone@gitea.io", "username": "gitea"},
            "timestamp": "2024-05-02T13:52:11-04:00",
        }
    ],
    "total_commits": 1,
    "head_commit": {"id": AFTER, "message": "Webhooks Yay!\n"},
    "repository": {
        "id": 140,
        "owner": {"id": 1, "login": "acme", "username": "acme"},
        "name": "shop",
        "full_name": "acme/shop",
        "private": False,
        "fork": False,
        "html_url": "https://git.example.org/acme/shop",
        "ssh_url": "ssh://git@git.example.org:2222/acme/shop.git",
        "clone_url": "https://git.example.org/acme/shop.git",
        "default_branch": "main",
    },
    "pusher": {"id": 1, "login": "gitea"},
    "sender": {"id": 1, "login": "gitea"},
}

GITLAB_PROJECT: dict[str, Any] = {
    "id": 15,
    "name": "Shop",
    "web_url": "https://gitlab.example.com/acme/backend/shop",
    "git_ssh_url": "git@gitlab.example.com:acme/backend/shop.git",
    "git_http_url": "https://gitlab.example.com/acme/backend/shop.git",
    "namespace": "backend",
    "visibility_level": 0,
    "path_with_namespace": "acme/backend/shop",
    "default_branch": "main",
    "homepage": "https://gitlab.example.com/acme/backend/shop",
    "url": "git@gitlab.example.com:acme/backend/shop.git",
    "ssh_url": "git@gitlab.example.com:acme/backend/shop.git",
    "http_url": "https://gitlab.example.com/acme/backend/shop.git",
}
GITLAB_PUSH: dict[str, Any] = {
    "object_kind": "push",
    "event_name": "push",
    "before": BEFORE,
    "after": AFTER,
    "ref": "refs/heads/main",
    "ref_protected": True,
    "checkout_sha": AFTER,
    "user_id": 4,
    "user_name": "John Smith",
    "user_username": "jsmith",
    "project_id": 15,
    "project": GITLAB_PROJECT,
    "repository": {
        "name": "Shop",
        "url": "git@gitlab.example.com:acme/backend/shop.git",
        "description": "",
        "homepage": "https://gitlab.example.com/acme/backend/shop",
        "git_http_url": "https://gitlab.example.com/acme/backend/shop.git",
        "git_ssh_url": "git@gitlab.example.com:acme/backend/shop.git",
        "visibility_level": 0,
    },
    "commits": [{"id": AFTER, "message": "Update the cart", "title": "Update the cart"}],
    "total_commits_count": 1,
}
GITLAB_TAG_PUSH = {**GITLAB_PUSH, "object_kind": "tag_push", "ref": "refs/tags/v1.0.0"}
GITLAB_DELETE = {**GITLAB_PUSH, "after": ZERO, "checkout_sha": None, "commits": []}
GITLAB_SYSTEM_PROJECT = {"event_name": "project_create", "name": "shop", "project_id": 74}

GH_REPOS = (
    "https://github.com/acme/shop.git",
    "git@github.com:acme/shop.git",
    "https://github.com/acme/shop",
    "acme/shop",
)
GITEA_REPOS = (
    "https://git.example.org/acme/shop.git",
    "ssh://git@git.example.org:2222/acme/shop.git",
    "https://git.example.org/acme/shop",
    "acme/shop",
)
GL_REPOS = (
    "https://gitlab.example.com/acme/backend/shop.git",
    "git@gitlab.example.com:acme/backend/shop.git",
    "https://gitlab.example.com/acme/backend/shop",
    "acme/backend/shop",
)


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def with_(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**payload, **changes}


def without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


# --- verify / sign ---------------------------------------------------------------------


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("provider", "headers", "data", "secret", "ok"),
    [
        # GitHub's documented vector, and everything that must not pass for it
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE}, GH_BODY, GH_SECRET, True),
        ("github", {"x-hub-signature-256": GH_SIGNATURE}, GH_BODY, GH_SECRET, True),
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE.upper()}, GH_BODY, GH_SECRET, True),
        ("github", {"X-Hub-Signature-256": f" {GH_SIGNATURE} "}, GH_BODY, GH_SECRET, True),
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE}, flip(GH_BODY, 0), GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE}, flip(GH_BODY, 12), GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE}, GH_BODY + b"\n", GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE}, GH_BODY, GH_SECRET + "!", False),
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE}, GH_BODY, "", False),
        ("github", {}, GH_BODY, GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": ""}, GH_BODY, GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": "sha1=" + GH_HEX}, GH_BODY, GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": GH_HEX}, GH_BODY, GH_SECRET, False),  # no prefix
        ("github", {"X-Hub-Signature-256": "sha256="}, GH_BODY, GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE[:-1]}, GH_BODY, GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE + "0"}, GH_BODY, GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": "sha256=zz" + GH_HEX[2:]}, GH_BODY, GH_SECRET, False),
        ("github", {"X-Hub-Signature-256": "sha256=é" + GH_HEX[1:]}, GH_BODY, GH_SECRET, False),
        ("github", {"X-Hub-Signature": "sha1=" + GH_HEX}, GH_BODY, GH_SECRET, False),
        ("github", {"X-Gitea-Signature": GH_HEX}, GH_BODY, GH_SECRET, False),  # not GitHub's
        # Gitea: bare hex; Forgejo sends its own header (and the Gitea one)
        ("gitea", {"X-Gitea-Signature": GH_HEX}, GH_BODY, GH_SECRET, True),
        ("gitea", {"X-Forgejo-Signature": GH_HEX}, GH_BODY, GH_SECRET, True),
        (
            "gitea",
            {"X-Forgejo-Signature": GH_HEX, "X-Gitea-Signature": GH_HEX},
            GH_BODY,
            GH_SECRET,
            True,
        ),
        ("gitea", {"X-Gitea-Signature": GH_HEX}, flip(GH_BODY, 5), GH_SECRET, False),
        ("gitea", {"X-Gitea-Signature": GH_SIGNATURE}, GH_BODY, GH_SECRET, False),  # a prefix
        ("gitea", {"X-Gitea-Signature": GH_HEX}, GH_BODY, "", False),
        ("gitea", {"X-Hub-Signature-256": GH_SIGNATURE}, GH_BODY, GH_SECRET, False),
        ("gitea", {}, GH_BODY, GH_SECRET, False),
        # GitLab: the token is the secret
        ("gitlab", {"X-Gitlab-Token": "s3cret"}, b"{}", "s3cret", True),
        ("gitlab", {"x-gitlab-token": "s3cret"}, b"anything", "s3cret", True),
        ("gitlab", {"X-Gitlab-Token": "s3cret!"}, b"{}", "s3cret", False),
        ("gitlab", {"X-Gitlab-Token": "S3CRET"}, b"{}", "s3cret", False),
        ("gitlab", {"X-Gitlab-Token": ""}, b"{}", "s3cret", False),
        ("gitlab", {}, b"{}", "s3cret", False),
        ("gitlab", {"X-Gitlab-Token": ""}, b"{}", "", False),
        ("gitlab", {"X-Gitlab-Token": "jeton-été"}, b"{}", "jeton-été", True),
        ("gitlab", {"X-Gitlab-Token": "\udcff"}, b"{}", "s3cret", False),  # undecodable bytes
        # unknown provider
        ("bitbucket", {"X-Hub-Signature-256": GH_SIGNATURE}, GH_BODY, GH_SECRET, False),
    ],
)
def test_verify(provider: str, headers: dict[str, str], data: bytes, secret: str, ok: bool) -> None:
    assert verify(provider, headers, data, secret) is ok


@pytest.mark.parametrize(
    ("provider", "signed"),
    [
        ("github", {"X-Hub-Signature-256": GH_SIGNATURE}),
        ("gitea", {"X-Gitea-Signature": GH_HEX}),
        ("gitlab", {"X-Gitlab-Token": GH_SECRET}),
    ],
)
def test_sign(provider: str, signed: dict[str, str]) -> None:
    assert sign(provider, GH_BODY, GH_SECRET) == signed
    assert verify(provider, signed, GH_BODY, GH_SECRET)


def test_sign_refuses_an_unknown_provider() -> None:
    with pytest.raises(HookError, match="unknown provider"):
        sign("bitbucket", b"", "x")


HEADER_NAMES = st.sampled_from(
    ["X-Hub-Signature-256", "X-Gitea-Signature", "X-Forgejo-Signature", "X-Gitlab-Token"]
)


@given(
    provider=st.sampled_from([*PROVIDERS, "", "GitHub", "bitbucket"]),
    headers=st.dictionaries(HEADER_NAMES | st.text(max_size=20), st.text(), max_size=5),
    data=st.binary(max_size=200),
    secret=st.text(max_size=30),
)
def test_verify_never_raises_on_junk(
    provider: str, headers: dict[str, str], data: bytes, secret: str
) -> None:
    assert verify(provider, headers, data, secret) in (True, False)


@given(data=st.binary(max_size=200), secret=st.text(min_size=1, max_size=30))
def test_a_signed_body_verifies_and_a_changed_one_does_not(data: bytes, secret: str) -> None:
    for provider in ("github", "gitea"):
        headers = sign(provider, data, secret)
        assert verify(provider, headers, data, secret)
        assert not verify(provider, headers, data + b"x", secret)


# --- header / delivery_id --------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "name", "value"),
    [
        ({"X-GitHub-Event": "push"}, "X-GitHub-Event", "push"),
        ({"x-github-event": "push"}, "X-GitHub-Event", "push"),
        ({"X-GITHUB-EVENT": " push "}, "x-github-event", "push"),
        ({"X-GitHub-Event": "push"}, "X-Gitea-Event", ""),
        ({}, "X-GitHub-Event", ""),
    ],
)
def test_header(headers: dict[str, str], name: str, value: str) -> None:
    assert header(headers, name) == value


@pytest.mark.parametrize(
    ("provider", "headers", "delivery"),
    [
        ("github", {"X-GitHub-Delivery": DELIVERY}, DELIVERY),
        ("github", {"x-github-delivery": DELIVERY}, DELIVERY),
        ("github", {"X-Gitea-Delivery": DELIVERY}, ""),
        ("gitea", {"X-Gitea-Delivery": "a1"}, "a1"),
        ("gitea", {"X-Forgejo-Delivery": "f1"}, "f1"),
        ("gitea", {"X-Gitea-Delivery": "a1", "X-Forgejo-Delivery": "a1"}, "a1"),
        ("gitea", {"X-GitHub-Delivery": "g1"}, ""),
        ("gitlab", {"Idempotency-Key": "k1", "X-Gitlab-Event-UUID": "u1"}, "k1"),
        ("gitlab", {"X-Gitlab-Event-UUID": "u1"}, "u1"),
        ("gitlab", {"idempotency-key": "", "X-Gitlab-Event-UUID": "u1"}, "u1"),
        ("gitlab", {}, ""),
        ("github", {"X-GitHub-Delivery": "d" * 500}, "d" * DELIVERY_CAP),
        ("bitbucket", {"X-GitHub-Delivery": DELIVERY}, ""),
    ],
)
def test_delivery_id(provider: str, headers: dict[str, str], delivery: str) -> None:
    assert delivery_id(provider, headers) == delivery


# --- parse -----------------------------------------------------------------------------


def gh(event: str, delivery: str = DELIVERY) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}


def gl(event: str, key: str = "k1") -> dict[str, str]:
    return {"X-Gitlab-Event": event, "Idempotency-Key": key}


GITEA_HEADERS = {"X-Gitea-Event": "push", "X-Gitea-Delivery": "a1"}
FORGEJO_HEADERS = {
    "X-Forgejo-Event": "push",
    "X-Forgejo-Delivery": "f1",
    "X-Gitea-Event": "push",
    "X-Gitea-Delivery": "f1",
}


@pytest.mark.parametrize(
    ("provider", "headers", "payload", "delivery"),
    [
        (
            "github",
            gh("push"),
            GITHUB_PUSH,
            Push("github", DELIVERY, GH_REPOS, "refs/heads/main", BEFORE, AFTER, False),
        ),
        (
            "github",
            gh("push"),
            with_(GITHUB_PUSH, forced=True, before=BEFORE.upper()),
            Push("github", DELIVERY, GH_REPOS, "refs/heads/main", BEFORE, AFTER, True),
        ),
        (  # a new branch: `before` is all zeros
            "github",
            gh("push"),
            with_(GITHUB_PUSH, ref="refs/heads/feature/x", before=ZERO, created=True),
            Push("github", DELIVERY, GH_REPOS, "refs/heads/feature/x", ZERO, AFTER, False),
        ),
        ("github", gh("ping"), GITHUB_PING, Ping("github", DELIVERY)),
        (
            "github",
            gh("issues"),
            GITHUB_ISSUES,
            Ignored("github", DELIVERY, "event 'issues' is not a push"),
        ),
        (
            "github",
            gh("push"),
            with_(GITHUB_PUSH, ref="refs/tags/v1.2.0", base_ref="refs/heads/main"),
            Ignored("github", DELIVERY, "push for tag 'v1.2.0'"),
        ),
        (
            "github",
            gh("push"),
            with_(GITHUB_PUSH, after=ZERO, deleted=True, head_commit=None, commits=[]),
            Ignored("github", DELIVERY, "branch 'main' was deleted"),
        ),
        (  # `deleted` alone is believed
            "github",
            gh("push"),
            with_(GITHUB_PUSH, deleted=True),
            Ignored("github", DELIVERY, "branch 'main' was deleted"),
        ),
        (
            "github",
            gh("push"),
            with_(GITHUB_PUSH, ref="refs/notes/commits"),
            Ignored("github", DELIVERY, "push to 'refs/notes/commits', not a branch"),
        ),
        (
            "github",
            gh("create"),
            GITHUB_PUSH,
            Ignored("github", DELIVERY, "event 'create' is not a push"),
        ),
        (  # no delivery id: the push is still a push
            "github",
            {"X-GitHub-Event": "push"},
            GITHUB_PUSH,
            Push("github", "", GH_REPOS, "refs/heads/main", BEFORE, AFTER, False),
        ),
        (
            "gitea",
            GITEA_HEADERS,
            GITEA_PUSH,
            Push("gitea", "a1", GITEA_REPOS, "refs/heads/develop", BEFORE, AFTER, False),
        ),
        (
            "gitea",
            FORGEJO_HEADERS,
            GITEA_PUSH,
            Push("gitea", "f1", GITEA_REPOS, "refs/heads/develop", BEFORE, AFTER, False),
        ),
        (
            "gitea",
            {"X-Forgejo-Event": "push", "X-Forgejo-Delivery": "f1"},
            GITEA_PUSH,
            Push("gitea", "f1", GITEA_REPOS, "refs/heads/develop", BEFORE, AFTER, False),
        ),
        (
            "gitea",
            {"X-Gitea-Event": "ping", "X-Gitea-Delivery": "a1"},
            {"hook_id": 3},
            Ping("gitea", "a1"),
        ),
        (
            "gitea",
            {"X-Gitea-Event": "delete", "X-Gitea-Delivery": "a1"},
            {"ref": "develop", "ref_type": "branch", "repository": GITEA_PUSH["repository"]},
            Ignored("gitea", "a1", "event 'delete' is not a push"),
        ),
        (
            "gitea",
            GITEA_HEADERS,
            with_(GITEA_PUSH, after=ZERO, commits=[], head_commit=None),
            Ignored("gitea", "a1", "branch 'develop' was deleted"),
        ),
        (
            "gitlab",
            gl("Push Hook"),
            GITLAB_PUSH,
            Push("gitlab", "k1", GL_REPOS, "refs/heads/main", BEFORE, AFTER, False),
        ),
        (
            "gitlab",
            {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "u1"},
            GITLAB_PUSH,
            Push("gitlab", "u1", GL_REPOS, "refs/heads/main", BEFORE, AFTER, False),
        ),
        (
            "gitlab",
            gl("System Hook"),
            GITLAB_PUSH,
            Push("gitlab", "k1", GL_REPOS, "refs/heads/main", BEFORE, AFTER, False),
        ),
        (
            "gitlab",
            gl("System Hook"),
            without(GITLAB_PUSH, "object_kind"),  # event_name says push too
            Push("gitlab", "k1", GL_REPOS, "refs/heads/main", BEFORE, AFTER, False),
        ),
        (
            "gitlab",
            gl("System Hook"),
            GITLAB_SYSTEM_PROJECT,
            Ignored("gitlab", "k1", "event 'System Hook' (project_create) is not a push"),
        ),
        (
            "gitlab",
            gl("Tag Push Hook"),
            GITLAB_TAG_PUSH,
            Ignored("gitlab", "k1", "push for tag 'v1.0.0'"),
        ),
        (
            "gitlab",
            gl("Push Hook"),
            GITLAB_DELETE,
            Ignored("gitlab", "k1", "branch 'main' was deleted"),
        ),
        (
            "gitlab",
            gl("Merge Request Hook"),
            {"object_kind": "merge_request", "project": GITLAB_PROJECT},
            Ignored("gitlab", "k1", "event 'Merge Request Hook' is not a push"),
        ),
        (  # only `project` (as in a system hook): still a repository
            "gitlab",
            gl("Push Hook"),
            without(GITLAB_PUSH, "repository"),
            Push("gitlab", "k1", GL_REPOS, "refs/heads/main", BEFORE, AFTER, False),
        ),
    ],
)
def test_parse(
    provider: str, headers: dict[str, str], payload: dict[str, Any], delivery: Delivery
) -> None:
    assert parse(provider, headers, body(payload)) == delivery


def test_parse_a_form_encoded_delivery() -> None:
    form = urllib.parse.urlencode({"payload": json.dumps(GITHUB_PUSH)}).encode()
    headers = {**gh("push"), "Content-Type": "application/x-www-form-urlencoded"}
    assert parse("github", headers, form) == parse("github", gh("push"), body(GITHUB_PUSH))


def test_push_properties() -> None:
    push = Push("github", "", GH_REPOS, "refs/heads/main", BEFORE, AFTER, False)
    assert (push.branch, push.deleted) == ("main", False)
    assert Push("github", "", GH_REPOS, "refs/tags/v1", "", AFTER, False).branch is None
    assert Push("github", "", GH_REPOS, "refs/heads/", "", AFTER, False).branch is None
    assert Push("github", "", GH_REPOS, "main", "", AFTER, False).branch is None
    assert Push("github", "", GH_REPOS, "refs/heads/a/b", "", "", False).deleted
    assert Push("github", "", GH_REPOS, "refs/heads/a/b", "", ZERO, False).deleted
    assert Push("github", "", GH_REPOS, "refs/heads/a/b", "", "0" * 64, False).deleted


def no_repository(payload: dict[str, Any]) -> dict[str, Any]:
    return without(without(payload, "repository"), "project")


@pytest.mark.parametrize(
    ("provider", "headers", "data", "message"),
    [
        ("github", gh("push"), b"{not json", "not JSON"),
        ("github", gh("push"), b"", "not JSON"),
        ("github", gh("push"), b"\xff\xfe\xfa", "not JSON"),
        ("github", gh("push"), b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        ("github", gh("push"), b"[1, 2]", "JSON list, not an object"),
        ("github", gh("push"), b'"push"', "JSON str, not an object"),
        ("github", gh("push"), b"null", "JSON NoneType, not an object"),
        ("github", gh("ping"), b"[]", "not an object"),
        ("github", gh("push"), body(without(GITHUB_PUSH, "ref")), "without a ref"),
        ("github", gh("push"), body(with_(GITHUB_PUSH, ref="")), "without a ref"),
        ("github", gh("push"), body(with_(GITHUB_PUSH, ref=7)), "without a ref"),
        ("github", gh("push"), body(with_(GITHUB_PUSH, ref="refs/heads/a b")), "impossible"),
        ("github", gh("push"), body(without(GITHUB_PUSH, "after")), "without 'after'"),
        ("github", gh("push"), body(with_(GITHUB_PUSH, after=None)), "without 'after'"),
        ("github", gh("push"), body(with_(GITHUB_PUSH, after="HEAD")), "not a commit id"),
        ("github", gh("push"), body(with_(GITHUB_PUSH, before="-rf")), "not a commit id"),
        ("github", gh("push"), body(no_repository(GITHUB_PUSH)), "names no repository"),
        ("github", gh("push"), body(with_(GITHUB_PUSH, repository="acme/shop")), "no repo"),
        (
            "github",
            gh("push"),
            body(with_(GITHUB_PUSH, repository={"clone_url": "a b"})),
            "no repository",
        ),
        ("github", {}, body(GITHUB_PUSH), "no X-GitHub-Event header"),
        ("gitea", {"X-Gitea-Delivery": "a1"}, body(GITEA_PUSH), "no X-Gitea-Event header"),
        ("gitea", GITEA_HEADERS, body(no_repository(GITEA_PUSH)), "names no repository"),
        ("gitlab", gl("Push Hook"), body(no_repository(GITLAB_PUSH)), "names no repository"),
        ("gitlab", gl("Push Hook"), body(without(GITLAB_PUSH, "ref")), "without a ref"),
        ("gitlab", {}, body(GITLAB_PUSH), "no X-Gitlab-Event header"),
        ("bitbucket", gh("push"), body(GITHUB_PUSH), "unknown provider"),
        (
            "github",
            {**gh("push"), "Content-Type": "application/x-www-form-urlencoded"},
            b"hook=1",
            "without a payload",
        ),
    ],
)
def test_parse_refuses_what_is_malformed(
    provider: str, headers: dict[str, str], data: bytes, message: str
) -> None:
    with pytest.raises(HookError, match=message):
        parse(provider, headers, data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
PUSHY = st.fixed_dictionaries(
    {},
    optional={
        "ref": st.sampled_from(["refs/heads/main", "refs/tags/v1", ""]) | st.text(max_size=20),
        "after": st.sampled_from([AFTER, ZERO, ""]) | JSON,
        "before": st.sampled_from([BEFORE, ZERO]) | JSON,
        "repository": st.fixed_dictionaries({}, optional={"clone_url": JSON}) | JSON,
        "project": st.fixed_dictionaries({}, optional={"git_http_url": JSON}) | JSON,
        "forced": JSON,
        "deleted": JSON,
        "object_kind": st.sampled_from(["push", "tag_push"]) | JSON,
    },
)


@given(
    provider=st.sampled_from(PROVIDERS),
    event=st.sampled_from(["push", "Push Hook", "System Hook", "ping", "issues"]),
    payload=PUSHY | JSON,
)
def test_parse_says_hook_error_or_an_answer(provider: str, event: str, payload: object) -> None:
    headers = {"X-GitHub-Event": event, "X-Gitea-Event": event, "X-Gitlab-Event": event}
    try:
        got = parse(provider, headers, body(payload))
    except HookError:
        return
    assert isinstance(got, Push | Ping | Ignored)
    if isinstance(got, Push):
        assert got.repositories and got.branch and not got.deleted


# --- normalise_repository / matches ----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "identity"),
    [
        ("https://github.com/acme/shop", "github.com/acme/shop"),
        ("https://github.com/acme/shop.git", "github.com/acme/shop"),
        ("https://github.com/acme/shop/", "github.com/acme/shop"),
        ("https://github.com/acme/shop.git/", "github.com/acme/shop"),
        ("  https://GitHub.COM/acme/shop  ", "github.com/acme/shop"),
        ("HTTPS://github.com/acme/shop", "github.com/acme/shop"),
        ("http://github.com/acme/shop", "github.com/acme/shop"),
        ("https://github.com:443/acme/shop", "github.com/acme/shop"),
        ("http://github.com:80/acme/shop", "github.com/acme/shop"),
        ("https://user:tok@github.com/acme/shop.git", "github.com/acme/shop"),
        ("https://x-access-token:ghs_abc@github.com/acme/shop", "github.com/acme/shop"),
        ("https://github.com/acme/shop?tab=readme#top", "github.com/acme/shop"),
        ("ssh://git@github.com/acme/shop.git", "github.com/acme/shop"),
        ("ssh://git@github.com:22/acme/shop", "github.com/acme/shop"),
        ("git+ssh://git@github.com/acme/shop", "github.com/acme/shop"),
        ("git@github.com:acme/shop.git", "github.com/acme/shop"),
        ("git@github.com:/acme/shop.git", "github.com/acme/shop"),
        ("github.com:acme/shop", "github.com/acme/shop"),
        ("git://github.com/acme/shop.git", "github.com/acme/shop"),
        ("https://github.com//acme//shop", "github.com/acme/shop"),
        ("github.com/acme/shop", "github.com/acme/shop"),  # no scheme at all: a name
        # a port that is not the scheme's default is part of the identity
        ("ssh://git@git.example.org:2222/acme/shop.git", "git.example.org:2222/acme/shop"),
        ("https://git.example.org:8443/acme/shop", "git.example.org:8443/acme/shop"),
        ("ssh://git@[2001:db8::1]:2222/acme/shop", "[2001:db8::1]:2222/acme/shop"),
        ("ssh://git@[2001:db8::1]/acme/shop", "[2001:db8::1]/acme/shop"),
        ("git@[2001:db8::1]:acme/shop", "[2001:db8::1]/acme/shop"),
        # GitLab's nested groups
        ("git@gitlab.example.com:acme/backend/shop.git", "gitlab.example.com/acme/backend/shop"),
        # local repositories: the path
        ("file:///srv/git/shop.git", "/srv/git/shop"),
        ("file://localhost/srv/git/shop.git", "/srv/git/shop"),
        ("/srv/git/shop.git", "/srv/git/shop"),
        ("/srv/git/shop/", "/srv/git/shop"),
        ("/srv/git/Shop", "/srv/git/Shop"),
        ("/srv/git/shop/.git", "/srv/git/shop/.git"),
        # full names
        ("acme/shop", "acme/shop"),
        ("acme/shop.git", "acme/shop"),
        ("", ""),
    ],
)
def test_normalise_repository(url: str, identity: str) -> None:
    assert normalise_repository(url) == identity


@given(st.text(max_size=60))
def test_normalise_repository_never_raises_and_is_idempotent_on_urls(url: str) -> None:
    normalise_repository(url)
    https = normalise_repository("https://" + url.replace("://", ""))
    assert normalise_repository("https://" + https) == https


GH_MAIN = Push("github", DELIVERY, GH_REPOS, "refs/heads/main", BEFORE, AFTER, False)
GL_MAIN = Push("gitlab", "k1", GL_REPOS, "refs/heads/main", BEFORE, AFTER, False)
NAME_ONLY = Push("github", "", ("acme/shop",), "refs/heads/main", BEFORE, AFTER, False)
LOCAL = Push("gitea", "", ("/srv/git/shop.git",), "refs/heads/main", BEFORE, AFTER, False)


@pytest.mark.parametrize(
    ("push", "remote", "branch", "reason"),
    [
        # the same repository in every form a remote is written
        (GH_MAIN, "https://github.com/acme/shop.git", "main", None),
        (GH_MAIN, "git@github.com:acme/shop.git", "main", None),
        (GH_MAIN, "ssh://git@github.com/acme/shop", "main", None),
        (GH_MAIN, "https://bot:ghp_token@github.com/acme/shop", "main", None),
        (GH_MAIN, "https://github.com/Acme/Shop", "main", None),  # GitHub ignores the case
        (GH_MAIN, "https://github.com/acme/shop", "refs/heads/main", None),
        (GL_MAIN, "https://gitlab.example.com/acme/backend/shop", "main", None),
        (GL_MAIN, "ssh://git@gitlab.example.com/acme/backend/shop.git", "main", None),
        # the full name matches a remote whose path ends with it (an ssh alias, a mirror)
        (GH_MAIN, "github-work:acme/shop.git", "main", None),
        (NAME_ONLY, "https://github.com/acme/shop", "main", None),
        (NAME_ONLY, "/srv/mirrors/acme/shop.git", "main", None),
        # ... whatever the host: an ssh alias cannot be told from another host by its name
        (GL_MAIN, "https://gitlab.com/acme/backend/shop", "main", None),
        (LOCAL, "file:///srv/git/shop", "main", None),
        # another branch
        (GH_MAIN, "https://github.com/acme/shop", "dev", "push to branch 'main', following 'dev'"),
        (
            Push("github", "", GH_REPOS, "refs/heads/dev", BEFORE, AFTER, False),
            "git@github.com:acme/shop.git",
            "main",
            "push to branch 'dev', following 'main'",
        ),
        # another repository
        (
            GH_MAIN,
            "https://github.com/acme/shop-admin",
            "main",
            "push for repository 'github.com/acme/shop', following 'github.com/acme/shop-admin'",
        ),
        (
            NAME_ONLY,
            "https://github.com/xacme/shop",  # the name ends the path at a segment boundary
            "main",
            "push for repository 'acme/shop', following 'github.com/xacme/shop'",
        ),
        (  # same path, another host, and no full name to fall back on
            Push("gitlab", "k1", GL_REPOS[:3], "refs/heads/main", BEFORE, AFTER, False),
            "https://gitlab.com/acme/backend/shop",
            "main",
            "push for repository 'gitlab.example.com/acme/backend/shop', "
            "following 'gitlab.com/acme/backend/shop'",
        ),
        (
            LOCAL,
            "/srv/git/Shop",  # a file system is case-sensitive
            "main",
            "push for repository '/srv/git/shop', following '/srv/git/Shop'",
        ),
        (  # a URL is not a full name: its path must match, not end the remote's
            Push("gitea", "", ("https://a.example/shop",), "refs/heads/main", "", AFTER, False),
            "https://b.example/a.example/shop",
            "main",
            "push for repository 'a.example/shop', following 'b.example/a.example/shop'",
        ),
        # a push that deploys nothing, whichever branch is followed
        (
            Push("github", "", GH_REPOS, "refs/tags/v1", "", AFTER, False),
            "https://github.com/acme/shop",
            "main",
            "push for tag 'v1'",
        ),
        (
            Push("github", "", GH_REPOS, "refs/heads/main", BEFORE, ZERO, False),
            "https://github.com/acme/shop",
            "main",
            "branch 'main' was deleted",
        ),
    ],
)
def test_matches(push: Push, remote: str, branch: str, reason: str | None) -> None:
    assert matches(push, remote, branch) == reason


# --- the notification hub --------------------------------------------------------------


@pytest.mark.parametrize(
    "push",
    [
        GH_MAIN,
        GL_MAIN,
        Push("gitea", "", ("acme/shop",), "refs/heads/feature/x", "", AFTER, True),
        Push("github", "d", GH_REPOS, "refs/heads/main", ZERO, "a" * 64, False),
    ],
)
def test_push_fields_round_trip(push: Push) -> None:
    fields = push_fields(push)
    assert all(isinstance(v, str) for v in fields.values())
    assert push_from_fields(fields) == push


def test_push_fields() -> None:
    assert push_fields(GH_MAIN) == {
        "provider": "github",
        "delivery": DELIVERY,
        "repositories": " ".join(GH_REPOS),
        "ref": "refs/heads/main",
        "before": BEFORE,
        "after": AFTER,
        "forced": "0",
    }


GOOD = push_fields(GH_MAIN)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        without(GOOD, "ref"),
        without(GOOD, "forced"),
        with_(GOOD, provider="bitbucket"),
        with_(GOOD, forced="yes"),
        with_(GOOD, repositories=""),
        with_(GOOD, repositories="   "),
        with_(GOOD, ref=""),
        with_(GOOD, ref="refs/heads/a b"),
        with_(GOOD, after="HEAD"),
        with_(GOOD, before="xyz"),
        with_(GOOD, delivery="d" * (DELIVERY_CAP + 1)),
    ],
)
def test_push_from_fields_refuses_what_is_malformed(fields: dict[str, str]) -> None:
    assert push_from_fields(fields) is None


@given(st.dictionaries(st.sampled_from(list(GOOD)), st.text(max_size=50)))
def test_push_from_fields_never_raises(changes: dict[str, str]) -> None:
    push = push_from_fields({**GOOD, **changes})
    assert push is None or push_from_fields(push_fields(push)) == push
