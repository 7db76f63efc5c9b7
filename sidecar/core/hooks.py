"""Push webhooks from GitHub, Gitea/Forgejo and GitLab, decided without I/O: whether a
delivery is authentic, what it says, and whether it is for the repository and branch the
sidecar follows. The HTTP handler (`POST /v1/hooks/<provider>`) reads the body, then calls
`verify`, `parse` and `matches` in that order.

Authenticity, per provider (nothing is parsed before it holds):
- github: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by the
  secret>`; the older SHA-1 `X-Hub-Signature` is not accepted;
- gitea: `X-Gitea-Signature: <hex HMAC-SHA256>` (no prefix). Forgejo sends the same value
  as `X-Forgejo-Signature` as well as the Gitea one, so either header is accepted;
- gitlab: `X-Gitlab-Token: <the secret itself>`; GitLab signs nothing, the token is a
  shared password.
Every comparison is constant-time, an empty secret authenticates nothing, and `verify`
answers False, never raises, for whatever a client sends: the handler calls it on
unauthenticated input.

What a delivery says (`parse`):
- the event is named by a header (`X-GitHub-Event`, `X-Gitea-Event` / `X-Forgejo-Event`,
  `X-Gitlab-Event`); a delivery without one is malformed;
- `push` (GitLab: `Push Hook`, `Tag Push Hook`, or a `System Hook` whose object_kind or
  event_name is push/tag_push) is a Push; `ping` (GitHub's hello when a hook is created) is
  a Ping; any other event is Ignored, and so is a push for a tag, for a ref that is not a
  branch, or one that deletes its branch: there is nothing to deploy;
- the body is JSON (GitHub and Gitea can also send it form-encoded, `payload=<json>`);
- a push names its repository several ways (clone URL, SSH URL, web URL, `owner/repo`):
  all are kept, so a remote written in any of those forms can match;
- malformed input raises HookError (the handler answers 400): it is a sender's bug, not a
  push to skip.

Matching (`matches`): repository identities are compared after `normalise_repository`, so
`git@host:o/r.git`, `ssh://git@host/o/r` and `https://user:tok@host/o/r.git` are one
repository; `owner/repo` (a full name) matches a remote whose path ends with it. Host and
owner/repo compare case-insensitively, as the forges route them; local paths do not.

The notification hub carries a Push to other sidecars as plain str fields (`push_fields`,
`push_from_fields`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

PROVIDERS = ("github", "gitea", "gitlab")
ZERO = "0" * 40  # the commit id a deleted (or, as `before`, a new) branch points at

DELIVERY_CAP = 200  # a delivery id is logged and stored: a sender cannot make it big
_IDENTITY_CAP = 1000  # longer "URLs" are not URLs
_LABEL_CAP = 100  # an event name quoted in a reason

# SHA-1 ids, and SHA-256 ones for repositories created with --object-format=sha256
_COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# git refs and the URLs forges give hold no whitespace or control characters; the hub joins
# repository identities with spaces, so one with a space could not come back whole
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")

_SIGNATURE_HEADERS = {
    "github": ("X-Hub-Signature-256",),
    "gitea": ("X-Gitea-Signature", "X-Forgejo-Signature"),
}
_EVENT_HEADERS = {
    "github": ("X-GitHub-Event",),
    "gitea": ("X-Gitea-Event", "X-Forgejo-Event"),
    "gitlab": ("X-Gitlab-Event",),
}
_DELIVERY_HEADERS = {
    "github": ("X-GitHub-Delivery",),
    "gitea": ("X-Gitea-Delivery", "X-Forgejo-Delivery"),
    # Idempotency-Key stays the same when GitLab retries a delivery; the event UUID is older
    "gitlab": ("Idempotency-Key", "X-Gitlab-Event-UUID"),
}
# where each payload names the repository, most useful first (a reason quotes the first)
_IDENTITY_FIELDS = {
    "github": (
        ("repository", "clone_url"),
        ("repository", "ssh_url"),
        ("repository", "html_url"),
        ("repository", "full_name"),
    ),
    "gitea": (
        ("repository", "clone_url"),
        ("repository", "ssh_url"),
        ("repository", "html_url"),
        ("repository", "full_name"),
    ),
    "gitlab": (
        ("project", "git_http_url"),
        ("project", "git_ssh_url"),
        ("project", "web_url"),
        ("project", "path_with_namespace"),
        ("repository", "git_http_url"),
        ("repository", "git_ssh_url"),
        ("repository", "homepage"),
    ),
}
_GITLAB_PUSH_EVENTS = frozenset({"push hook", "tag push hook"})
_GITLAB_PUSH_KINDS = frozenset({"push", "tag_push"})

_FIELDS = ("provider", "delivery", "repositories", "ref", "before", "after", "forced")


class HookError(ValueError):
    """The delivery is malformed: the message says what (400)."""


@dataclass(frozen=True)
class Push:
    provider: str
    delivery: str  # the delivery id ('' when the sender gave none)
    repositories: tuple[str, ...]  # every URL/name the payload gives for the repository
    ref: str  # e.g. "refs/heads/main"
    before: str
    after: str  # the new commit ('' or ZERO when the branch was deleted)
    forced: bool  # the sender says history was rewritten (GitHub's `forced`); False: unknown

    @property
    def branch(self) -> str | None:
        """'main' for refs/heads/main; None for tags and other refs."""
        name = self.ref.removeprefix("refs/heads/")
        return name if name and name != self.ref else None

    @property
    def deleted(self) -> bool:
        # all zeros: ZERO, or its 64-digit form in a SHA-256 repository
        return not self.after.strip("0")


@dataclass(frozen=True)
class Ping:
    provider: str
    delivery: str


@dataclass(frozen=True)
class Ignored:
    provider: str
    delivery: str
    reason: str  # e.g. "event 'issues' is not a push"


Delivery = Push | Ping | Ignored


def header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive header lookup ('' when absent)."""
    # aiohttp's CIMultiDictProxy answers directly whatever the case; a plain dict may not
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next(
            (v for k, v in headers.items() if isinstance(k, str) and k.lower() == wanted), None
        )
    return value.strip() if isinstance(value, str) else ""


def _bytes(text: str) -> bytes:
    # hmac.compare_digest refuses non-ASCII str; surrogatepass encodes even lone surrogates
    # (undecodable header bytes), so no input makes the comparison raise
    return text.encode("utf-8", "surrogatepass")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(_bytes(given), _bytes(expected))


def _hex_hmac(body: bytes, secret: str) -> str:
    return hmac.new(_bytes(secret), body, hashlib.sha256).hexdigest()


def sign(provider: str, body: bytes, secret: str) -> dict[str, str]:
    """The headers a sender would add for `body` (for tests and benchmarks)."""
    if provider == "github":
        return {"X-Hub-Signature-256": "sha256=" + _hex_hmac(body, secret)}
    if provider == "gitea":
        return {"X-Gitea-Signature": _hex_hmac(body, secret)}
    if provider == "gitlab":
        return {"X-Gitlab-Token": secret}
    raise HookError(f"unknown provider {provider!r}")


def verify(provider: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """True only when the delivery carries a valid signature (github/gitea) or token (gitlab)
    for `secret`. An empty secret, an unknown provider or a missing/malformed header is
    False; never raises."""
    if not secret or provider not in PROVIDERS:
        return False
    if not isinstance(body, bytes | bytearray | memoryview):
        return False
    if provider == "gitlab":
        token = header(headers, "X-Gitlab-Token")
        return bool(token) and _same(token, secret)
    digest = _hex_hmac(body, secret)
    expected = "sha256=" + digest if provider == "github" else digest
    for given in (header(headers, h) for h in _SIGNATURE_HEADERS[provider]):
        # hex digits in either case; a different length or prefix just compares unequal
        if given and _same(given.lower(), expected):
            return True
    return False


def delivery_id(provider: str, headers: Mapping[str, str]) -> str:
    """The sender's id of this delivery ('' when none), capped at DELIVERY_CAP chars."""
    for name in _DELIVERY_HEADERS.get(provider, ()):
        value = header(headers, name)
        if value:
            return value[:DELIVERY_CAP]
    return ""


def _event(provider: str, headers: Mapping[str, str]) -> str:
    names = _EVENT_HEADERS[provider]
    for name in names:
        value = header(headers, name)
        if value:
            return value[:_LABEL_CAP]
    raise HookError(f"no {names[0]} header: which event is this?")


def _json_text(headers: Mapping[str, str], body: bytes) -> str | bytes:
    """The JSON of the body: the body itself, or its `payload` field when form-encoded."""
    content_type = header(headers, "Content-Type").partition(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return body
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), max_num_fields=100)
    except ValueError as e:  # UnicodeDecodeError, too many fields
        raise HookError(f"the form-encoded body does not decode: {e}") from None
    if "payload" not in form:
        raise HookError("a form-encoded delivery without a payload field")
    return form["payload"][0]


def _payload(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    text = _json_text(headers, body)
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise HookError(f"the body is not JSON: {e}") from None
    if not isinstance(payload, dict):
        raise HookError(f"the body is a JSON {type(payload).__name__}, not an object")
    return payload


def _kind(provider: str, event: str, payload: Mapping[str, Any]) -> str:
    """'push', 'ping', or the event as a reason quotes it."""
    lowered = event.lower()
    if lowered == "ping":
        return "ping"
    if provider != "gitlab":
        return "push" if lowered == "push" else repr(event)
    if lowered in _GITLAB_PUSH_EVENTS:
        return "push"
    if lowered == "system hook":
        # a system hook carries every instance event; a push says so in its payload
        kind = payload.get("object_kind") or payload.get("event_name")
        if isinstance(kind, str) and kind in _GITLAB_PUSH_KINDS:
            return "push"
        return f"{event!r} ({str(kind)[:_LABEL_CAP]})"
    return repr(event)


def _ref(payload: Mapping[str, Any]) -> str:
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref:
        raise HookError("a push without a ref")
    if len(ref) > _IDENTITY_CAP or _BAD_CHARS.search(ref):
        raise HookError(f"a push with an impossible ref {ref[:_LABEL_CAP]!r}")
    return ref


def _commit(payload: Mapping[str, Any], key: str, *, required: bool) -> str:
    """A commit id, lowercased; '' for an absent `before` or an empty (deleted) `after`."""
    value = payload.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise HookError(f"a push without {key!r}")
    value = value.strip().lower()
    if value and not _COMMIT.fullmatch(value):
        raise HookError(f"a push whose {key!r} is not a commit id: {value[:_LABEL_CAP]!r}")
    return value


def _identities(provider: str, payload: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for section, key in _IDENTITY_FIELDS[provider]:
        block = payload.get(section)
        value = block.get(key) if isinstance(block, dict) else None
        if not isinstance(value, str):
            continue
        value = value.strip()
        if value and len(value) <= _IDENTITY_CAP and not _BAD_CHARS.search(value):
            found.append(value)
    if not found:
        raise HookError("a push that names no repository")
    return tuple(dict.fromkeys(found))  # once each, in order


def _skip_reason(push: Push) -> str | None:
    """Why a push deploys nothing whichever branch is followed, or None."""
    branch = push.branch
    if branch is None:
        if push.ref.startswith("refs/tags/"):
            return f"push for tag {push.ref.removeprefix('refs/tags/')!r}"
        return f"push to {push.ref!r}, not a branch"
    if push.deleted:
        return f"branch {branch!r} was deleted"
    return None


def parse(provider: str, headers: Mapping[str, str], body: bytes) -> Delivery:
    """What a verified delivery says: a Push, a Ping, or Ignored with the reason. Raises
    HookError for what is malformed (see the module's docstring)."""
    if provider not in PROVIDERS:
        raise HookError(f"unknown provider {provider!r}")
    delivery = delivery_id(provider, headers)
    event = _event(provider, headers)
    payload = _payload(headers, body)
    kind = _kind(provider, event, payload)
    if kind == "ping":
        return Ping(provider, delivery)
    if kind != "push":
        return Ignored(provider, delivery, f"event {kind} is not a push")
    ref = _ref(payload)
    after = _commit(payload, "after", required=True)
    before = _commit(payload, "before", required=False)
    forced = payload.get("forced") is True
    push = Push(provider, delivery, _identities(provider, payload), ref, before, after, forced)
    if payload.get("deleted") is True and not push.deleted:
        # GitHub says so outright; keep `after` and `deleted` telling one story
        push = replace(push, after=ZERO)
    reason = _skip_reason(push)
    return Ignored(provider, delivery, reason) if reason else push


# --- repository identities -------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_DEFAULT_PORTS = {"http": "80", "https": "443", "ssh": "22", "git+ssh": "22", "ssh+git": "22"}
# git's scp-like syntax: `[user@]host:path`, a colon before any slash (`[v6]:path` too)
_SCP = re.compile(r"(?:[^@/]*@)?(?P<host>\[[^\]/]*\]|[^:/@\[\]]+):(?P<path>.*)", re.DOTALL)


def _clean_path(path: str) -> str:
    """Segments without empty or '.' ones, the last one without '.git'."""
    parts = [p for p in path.split("/") if p and p != "."]
    if parts and parts[-1].endswith(".git") and parts[-1] != ".git":
        parts[-1] = parts[-1].removesuffix(".git")
    return "/".join(parts)


def _remote(host: str, path: str) -> str:
    host = host.lower().rstrip(".")
    path = _clean_path(path)
    return f"{host}/{path}" if path else host


def _host_port(netloc: str, scheme: str) -> str:
    """`host[:port]` of a URL's netloc: credentials dropped, the scheme's default port too."""
    hostport = netloc.rpartition("@")[2].strip()
    host, colon, port = hostport.rpartition(":")
    if not colon or (host.startswith("[") and not host.endswith("]")):
        host, port = hostport, ""  # no port (a bare IPv6 literal's colons are its own)
    if port and port == _DEFAULT_PORTS.get(scheme):
        port = ""
    return f"{host}:{port}" if port else host


def normalise_repository(url: str) -> str:
    """A comparable identity of a repository URL or name: 'host/owner/repo' for a remote URL
    (scheme, credentials and a default port dropped, host lowercased), the path for a local
    one; no trailing '/' or '.git' either way. Never raises. Text with whitespace or
    control characters inside is no repository: ''."""
    text = url.strip()
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        return ""
    scheme, sep, rest = text.partition("://")
    if sep and _SCHEME.fullmatch(scheme):
        scheme = scheme.lower()
        rest = re.split(r"[?#]", rest, maxsplit=1)[0].strip()
        netloc, _, path = rest.partition("/")
        if scheme == "file" and netloc.lower() in ("", "localhost"):
            return "/" + _clean_path(path)
        return _remote(_host_port(netloc, scheme), path)
    scp = None if text.startswith(("/", ".", "~")) else _SCP.fullmatch(text)
    if scp:
        return _remote(scp["host"], scp["path"])
    # a local path, or a bare `owner/repo`
    cleaned = _clean_path(text)
    return "/" + cleaned if text.startswith("/") else cleaned


def _is_name(identity: str) -> bool:
    """A bare `owner/repo` (a full name), not a URL, scp-like address or path."""
    text = identity.strip()
    return not ("://" in text or ":" in text or text.startswith(("/", ".", "~")))


def _key(normalised: str) -> str:
    # forges route host and owner/repo case-insensitively; a file system may not
    return normalised if normalised.startswith("/") else normalised.lower()


def _same_repository(identity: str, target: str) -> bool:
    mine = _key(normalise_repository(identity))
    if mine == target:
        return True
    return _is_name(identity) and bool(mine) and target.endswith("/" + mine)


def matches(push: Push, remote: str, branch: str) -> str | None:
    """None when the push is for this remote and branch (`main` or `refs/heads/main`), else
    the reason it is ignored."""
    target = normalise_repository(remote)
    if not any(_same_repository(r, _key(target)) for r in push.repositories):
        shown = normalise_repository(push.repositories[0]) if push.repositories else ""
        return f"push for repository {shown!r}, following {target!r}"
    reason = _skip_reason(push)
    if reason:
        return reason
    followed = branch.strip().removeprefix("refs/heads/")
    if push.branch != followed:
        return f"push to branch {push.branch!r}, following {followed!r}"
    return None


# --- the notification hub --------------------------------------------------------------


def push_fields(push: Push) -> dict[str, str]:
    """A Push as the str fields of a hub entry."""
    return {
        "provider": push.provider,
        "delivery": push.delivery,
        "repositories": " ".join(push.repositories),
        "ref": push.ref,
        "before": push.before,
        "after": push.after,
        "forced": "1" if push.forced else "0",
    }


def push_from_fields(fields: Mapping[str, str]) -> Push | None:
    """The Push of a hub entry; None when it is malformed (another version wrote it, or
    something else than push_fields)."""
    if not all(isinstance(fields.get(k), str) for k in _FIELDS):
        return None
    if fields["provider"] not in PROVIDERS or fields["forced"] not in ("0", "1"):
        return None
    repositories = tuple(fields["repositories"].split())
    if not repositories or len(fields["delivery"]) > DELIVERY_CAP:
        return None
    try:
        ref = _ref(fields)
        before = _commit(fields, "before", required=True)
        after = _commit(fields, "after", required=True)
    except HookError:
        return None
    forced = fields["forced"] == "1"
    return Push(fields["provider"], fields["delivery"], repositories, ref, before, after, forced)
