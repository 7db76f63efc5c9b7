"""Images from a container registry, decided without I/O: what an image reference names,
what a registry's push notification says, which services run the pushed image, which
manifest of an index is this machine's, and whether a running service has drifted from its
tag. The HTTP handlers (a registry's notifications, Docker Hub's webhook) and the registry
client do the I/O and call these.

References (`parse_ref`) follow Docker's grammar (distribution/reference):
- `[registry/]repository[:tag][@digest]`; the first `/`-separated component is the registry
  when it contains `.` or `:` or is `localhost`, else the whole name is a repository on
  Docker Hub: `127.0.0.1:5000/web` is repository `web` on `127.0.0.1:5000`, `web:5000` is
  tag `5000` of `docker.io/library/web`;
- Docker Hub is `docker.io`; `index.docker.io` and `registry-1.docker.io` are the same
  registry and normalise to it; a one-component repository there is an official image
  (`nginx` is `docker.io/library/nginx`); other registries keep the name as given;
- the repository is lowercase components joined by `/` (separators `.`, `_`, `__`, dashes
  inside a component), registry and repository together at most 255 characters; a tag is
  `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a digest is `sha256:<64 hex>` or
  `sha512:<128 hex>`, lowercase. The tag defaults to `latest`, unless a digest was given:
  a reference pinned by digest has no tag unless it names one (`web:v1@sha256:...`);
- the registry is lowercased (host names are case-insensitive); an uppercase repository,
  a bare 64-hex image id, spaces or anything else off the grammar raise ImageError.
Unlike Docker's newest normaliser, an uppercase first component (`UPPER/x`) is not taken as
a registry host: it is an uppercase repository, an error.

A registry's notifications (`parse_registry_envelope`; the CNCF distribution registry,
`Content-Type: application/vnd.docker.distribution.events.v1+json`, v2 in distribution 3):
`{"events": [...]}`, each event an `action` (push, pull, mount, delete) on a `target`
(`mediaType`, `digest`, `repository`, `tag`, `url`) with the `request` that caused it.
A deploy follows only a push of an image manifest or index (MANIFEST_TYPES, INDEX_TYPES)
that carries a tag: blob pushes carry none, and neither does a manifest pushed by digest
(the platform manifests of a multi-platform push, before the index is pushed by tag).
Every other event is skipped with the reason. The registry is the request's Host header as
the pusher wrote it (`request.host`), or the host the sidecar was configured with when the
event has none; it must then be the name the services' images use (`localhost:5000` and
`127.0.0.1:5000` are two registries to a reference). A body that is not an envelope raises
ImageError (the handler answers 400); an event inside one that cannot be used is skipped:
one bad event does not lose the others.

Docker Hub's webhook (`parse_dockerhub`) says `repository.repo_name` (`user/repo`;
`namespace` + `name` when it is missing) and `push_data.tag`; it gives no digest, no
event id and no media type (its `callback_url` is a legacy field, not an id).

Drift (`drift_of`): a running image's RepoDigests (`name@sha256:...`, Docker's familiar
form) say which manifest it was pulled as; the one for the service's repository is compared
with what the registry serves for the tag. For a multi-platform tag the registry answers
the index digest, and an image may have been recorded under either the index or this
platform's entry in it (`platform_entry`): running equal to either is up to date. A service
pinned by digest is compared with its pin and needs no registry. An image without a repo
digest for its repository was built or loaded locally: nothing to compare, not drifted;
neither is a service whose registry could not answer.

Nothing here raises on junk but ImageError, and only where documented: the handlers call
these on unauthenticated input."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
_OFFICIAL = "library/"  # Docker Hub's namespace for official images
_HUB_ALIASES = frozenset({DEFAULT_REGISTRY, "index.docker.io", "registry-1.docker.io"})

ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
# distribution 3 sends the same envelope as v2
ENVELOPE_MEDIA_TYPES = frozenset(
    {ENVELOPE_MEDIA_TYPE, "application/vnd.docker.distribution.events.v2+json"}
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# the Accept header of a HEAD/GET for a tag, most preferred first
MANIFEST_ACCEPT: tuple[str, ...] = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

NAME_CAP = 255  # Docker's limit on registry/repository
EVENT_ID_CAP = 200  # an event id is logged and stored: a sender cannot make it big
_TEXT_CAP = 1000  # a longer "reference" is not one
_LABEL_CAP = 100  # a value quoted in a message

# distribution/reference's grammar
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")

UP_TO_DATE = "up to date"
NO_REPO_DIGEST = "not pulled from a registry (no repo digest)"


class ImageError(ValueError):
    """Malformed input (a reference, an envelope): the message says what."""


@dataclass(frozen=True)
class ImageRef:
    registry: str  # "docker.io", "127.0.0.1:5000", "ghcr.io"
    repository: str  # "library/nginx", "team/web"
    tag: str = DEFAULT_TAG  # "" when only a digest was given
    digest: str = ""  # "sha256:..." or ""

    @property
    def name(self) -> str:
        """registry/repository, e.g. "docker.io/library/nginx"."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def _show(value: object) -> str:
    """A value as a message quotes it: repr, capped."""
    text = value if isinstance(value, str) else str(type(value).__name__)
    return repr(text[:_LABEL_CAP] + ("..." if len(text) > _LABEL_CAP else ""))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _registry(host: str) -> str:
    """The registry named by a host[:port], normalised; raises ImageError."""
    if len(host) > NAME_CAP or not _HOST.fullmatch(host):
        raise ImageError(f"{_show(host)} is not a registry host")
    host = host.lower()
    return DEFAULT_REGISTRY if host in _HUB_ALIASES else host


def _make(registry: str, repository: str, tag: str, digest: str) -> ImageRef:
    """A normalised ImageRef from its parts; raises ImageError saying which is wrong."""
    host = _registry(registry)
    if not repository:
        raise ImageError("no repository name")
    if not _REPOSITORY.fullmatch(repository):
        if _REPOSITORY.fullmatch(repository.lower()):
            raise ImageError(f"the repository name {_show(repository)} must be lowercase")
        raise ImageError(f"{_show(repository)} is not a repository name")
    if host == DEFAULT_REGISTRY and "/" not in repository:
        repository = _OFFICIAL + repository
    if len(host) + 1 + len(repository) > NAME_CAP:
        raise ImageError(f"the name is longer than {NAME_CAP} characters")
    if tag and not _TAG.fullmatch(tag):
        raise ImageError(f"{_show(tag)} is not a tag")
    if digest and not _DIGEST.fullmatch(digest):
        raise ImageError(f"{_show(digest)} is not a digest (sha256:<64 hex>)")
    return ImageRef(host, repository, tag, digest)


def parse_ref(text: str) -> ImageRef:
    """An image reference, normalised (see the module's docstring); raises ImageError for
    what is not one."""
    if not isinstance(text, str) or not text:
        raise ImageError("an empty image reference")
    if len(text) > _TEXT_CAP:
        raise ImageError(f"an image reference of {len(text)} characters")
    shown = _show(text)
    if _IMAGE_ID.fullmatch(text):
        raise ImageError(f"{shown} is an image id (64 hex digits), not a reference")
    rest, at, digest = text.partition("@")
    if at and not digest:
        raise ImageError(f"{shown}: nothing after '@'")
    first, slash, remainder = rest.partition("/")
    if slash and (first == "localhost" or "." in first or ":" in first):
        registry, path = first, remainder
    else:
        registry, path = DEFAULT_REGISTRY, rest
    repository, colon, tag = path.partition(":")
    if colon and not tag:
        raise ImageError(f"{shown}: nothing after ':'")
    if not colon:
        tag = "" if at else DEFAULT_TAG
    try:
        return _make(registry, repository, tag, digest)
    except ImageError as e:
        raise ImageError(f"{shown}: {e}") from None


def _canonical(ref: ImageRef) -> tuple[str, str]:
    """(registry, repository) as parse_ref gives them, also for an ImageRef made by hand."""
    registry = ref.registry.lower()
    if registry in _HUB_ALIASES:
        registry = DEFAULT_REGISTRY
        if "/" not in ref.repository:
            return registry, _OFFICIAL + ref.repository
    return registry, ref.repository


def same_repository(a: ImageRef, b: ImageRef) -> bool:
    """Same registry and repository (tags and digests ignored)."""
    return _canonical(a) == _canonical(b)


def same_tag(a: ImageRef, b: ImageRef) -> bool:
    """Same registry, repository and tag (digests ignored)."""
    return same_repository(a, b) and a.tag == b.tag


def short_digest(digest: str) -> str:
    """sha256:7a0f7788f9ca... for display."""
    algorithm, colon, encoded = digest.partition(":")
    if colon and len(encoded) > 12:
        return f"{algorithm}:{encoded[:12]}..."
    return digest


# --- pushes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryPush:
    ref: ImageRef  # registry, repository and tag pushed (no digest: see `digest`)
    digest: str  # the pushed manifest's digest ('' when the sender gave none: Docker Hub)
    event_id: str  # for deduplication ('' when none)
    media_type: str  # the manifest's media type ('' when the sender gave none)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ImageError(f"the {what} is not bytes")
    try:
        payload = json.loads(bytes(body))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise ImageError(f"the {what} is not JSON: {e}") from None
    if not isinstance(payload, dict):
        raise ImageError(f"the {what} is a JSON {type(payload).__name__}, not an object")
    return payload


def _media_type(value: object) -> str:
    """A media type without parameters, lowercased ('' when it is not a string)."""
    return _text(value).partition(";")[0].strip().lower()


def _describe(action: str, target: Mapping[str, Any]) -> str:
    """'push of team/web:v2 (sha256:...)' for a reason."""
    repository = _text(target.get("repository"))[:_LABEL_CAP] or "?"
    tag = _text(target.get("tag"))[:_LABEL_CAP]
    digest = short_digest(_text(target.get("digest"))[:_LABEL_CAP])
    what = f"{action} of {repository}" + (f":{tag}" if tag else "")
    return f"{what} ({digest})" if digest else what


def _not_a_tag_push(action: object, target: Mapping[str, Any]) -> str | None:
    """Why an event's action and target are not a tagged manifest push, or None."""
    if action != "push":
        return "not a push" if isinstance(action, str) and action else "no action"
    media_type = _media_type(target.get("mediaType"))
    if media_type not in MANIFEST_TYPES | INDEX_TYPES:
        shown = _show(media_type) if media_type else "no media type"
        return f"{shown} is not an image manifest (a blob?)"
    tag = target.get("tag")
    if not isinstance(tag, str) or not tag:
        return "pushed by digest, no tag"
    digest = target.get("digest")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        return "no valid digest"
    return None


def _event_push(event: object, registry_host: str) -> RegistryPush | str:
    """The push an event is, or why it is skipped."""
    if not isinstance(event, dict):
        return f"a JSON {type(event).__name__}, not an event"
    target = event.get("target")
    if not isinstance(target, dict):
        return "an event without a target"
    action = event.get("action")
    what = _describe(_text(action)[:_LABEL_CAP] or "event", target)
    reason = _not_a_tag_push(action, target)
    request = event.get("request")
    host = _text(request.get("host")) if isinstance(request, dict) else ""
    host = host.strip() or registry_host.strip()
    if not reason and not host:
        reason = "no request.host and no registry host configured"
    if reason:
        return f"{what}: {reason}"
    try:
        ref = _make(host, _text(target.get("repository")), target["tag"], "")
    except ImageError as e:
        return f"{what}: {e}"
    event_id = _text(event.get("id"))[:EVENT_ID_CAP]
    return RegistryPush(ref, target["digest"], event_id, _media_type(target.get("mediaType")))


def parse_registry_envelope(
    body: bytes, registry_host: str = ""
) -> tuple[list[RegistryPush], list[str]]:
    """(the manifest pushes with a tag, why each other event was skipped). `registry_host`:
    the registry's host:port as the sidecar knows it, used when request.host is missing.
    Raises ImageError for a body that is not an envelope."""
    envelope = _json_object(body, "notification")
    events = envelope.get("events")
    if not isinstance(events, list):
        raise ImageError("a notification without an 'events' list: not a registry envelope")
    host = registry_host if isinstance(registry_host, str) else ""
    pushes: list[RegistryPush] = []
    skipped: list[str] = []
    for number, event in enumerate(events, 1):
        result = _event_push(event, host)
        if isinstance(result, RegistryPush):
            pushes.append(result)
        else:
            skipped.append(f"event {number}: {result}")
    return pushes, skipped


def parse_dockerhub(body: bytes) -> RegistryPush:
    """The push a Docker Hub webhook reports; raises ImageError for what is not one."""
    payload = _json_object(body, "Docker Hub webhook")
    push_data = payload.get("push_data")
    repository = payload.get("repository")
    if not isinstance(push_data, dict) or not isinstance(repository, dict):
        raise ImageError("not a Docker Hub push: no push_data and repository objects")
    tag = push_data.get("tag")
    if not isinstance(tag, str) or not tag:
        raise ImageError("a Docker Hub push without push_data.tag")
    name = repository.get("repo_name")
    if not isinstance(name, str) or not name:
        namespace, repo = repository.get("namespace"), repository.get("name")
        if not (isinstance(namespace, str) and namespace and isinstance(repo, str) and repo):
            raise ImageError("a Docker Hub push that names no repository")
        name = f"{namespace}/{repo}"
    try:
        ref = _make(DEFAULT_REGISTRY, name, tag, "")
    except ImageError as e:
        raise ImageError(f"a Docker Hub push of {_show(name)}: {e}") from None
    return RegistryPush(ref, "", "", "")


def matching_services(push: RegistryPush, services: Mapping[str, str]) -> list[str]:
    """Names of the services (name -> configured image reference) whose image is the pushed
    repository and tag (normalised; a service pinned by digest never matches a tag push),
    sorted. A service whose image is not a reference matches nothing."""
    names: list[str] = []
    for name, image in services.items():
        try:
            ref = parse_ref(image)
        except ImageError:
            continue
        if not ref.digest and same_tag(ref, push.ref):
            names.append(name)
    return sorted(names)


# --- platforms -------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    os: str  # "linux"
    architecture: str  # OCI/Go names: "amd64", "arm64", "arm", "386"...
    variant: str = ""  # "v8" (arm64), "v7" (arm)...

    def __str__(self) -> str:
        parts = (self.os, self.architecture, self.variant)
        return "/".join(p for p in parts if p)


# platform.machine() / uname -m names -> (architecture, variant)
_MACHINES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "x64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "arm": ("arm", "v7"),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "x86": ("386", ""),
    "386": ("386", ""),
    "mips64el": ("mips64le", ""),
    "mipsel": ("mipsle", ""),
    "loongarch64": ("loong64", ""),
}
_ARM = re.compile(r"armv([5-8])[a-z]*")  # armv5tel, armv6l, armv7l, armv8l (32-bit userland)


def local_platform(machine: str, system: str = "Linux") -> Platform:
    """The OCI platform of `platform.machine()` / `platform.system()` names: x86_64 ->
    amd64, aarch64 -> arm64/v8, armv7l -> arm/v7, i686 -> 386; names without an alias
    (ppc64le, s390x, riscv64) as they are, lowercased."""
    name = machine.strip().lower() if isinstance(machine, str) else ""
    os_name = system.strip().lower() if isinstance(system, str) else ""
    arm = _ARM.fullmatch(name)
    if arm:
        architecture, variant = "arm", f"v{arm[1]}"
    else:
        architecture, variant = _MACHINES.get(name, (name, ""))
    return Platform(os_name or "linux", architecture, variant)


# names an index may use for an architecture, and variants written without their "v"
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386"}


def _normal(architecture: str, variant: str) -> tuple[str, str]:
    architecture = architecture.strip().lower()
    variant = variant.strip().lower()
    if variant.isdigit():
        variant = "v" + variant
    return _ARCH_ALIASES.get(architecture, architecture), variant


def _attestation(entry: Mapping[str, Any], platform: Mapping[str, Any]) -> bool:
    """A buildx attestation manifest (provenance, SBOM), not an image."""
    annotations = entry.get("annotations")
    if isinstance(annotations, dict) and "vnd.docker.reference.type" in annotations:
        return True
    return platform.get("os") == "unknown" and platform.get("architecture") == "unknown"


def platform_entry(index: Mapping[str, Any], want: Platform) -> str | None:
    """The digest of the index's manifest for `want` (variant matched when given, an entry
    without variant accepted for arm64), None when the index has none. Attestation manifests
    (platform unknown/unknown, or annotations vnd.docker.reference.type) are skipped.
    An entry with the exact variant wins over one accepted without it; among equals the
    first. Never raises."""
    manifests = index.get("manifests") if isinstance(index, Mapping) else None
    if not isinstance(manifests, list):
        return None
    want_os = want.os.strip().lower()
    want_arch, want_variant = _normal(want.architecture, want.variant)
    loose: str | None = None
    for entry in manifests:
        if not isinstance(entry, dict):
            continue
        digest, platform = entry.get("digest"), entry.get("platform")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            continue
        if not isinstance(platform, dict) or _attestation(entry, platform):
            continue
        if _text(platform.get("os")).strip().lower() != want_os:
            continue
        arch, variant = _normal(_text(platform.get("architecture")), _text(platform.get("variant")))
        if arch != want_arch:
            continue
        if variant == want_variant:
            return digest
        if loose is None and (not want_variant or (not variant and arch == "arm64")):
            loose = digest
    return loose


# --- drift -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    service: str
    ref: str  # the service's image reference as configured (canonical)
    running: str  # the digest the running image has for that repository ('' unknown)
    remote: str  # the registry's digest for the tag (the pin, for a reference pinned by digest)
    drifted: bool
    reason: str  # "up to date", "registry has sha256:ab12..., running sha256:cd34...", ...


def running_digests(ref: ImageRef, repo_digests: Sequence[str]) -> list[str]:
    """The digests RepoDigests (`name@digest`, Docker's familiar form) give for `ref`'s
    repository, in order, once each; entries that do not parse are ignored."""
    found: list[str] = []
    for entry in repo_digests or ():
        try:
            recorded = parse_ref(entry)
        except ImageError:
            continue
        if recorded.digest and same_repository(recorded, ref) and recorded.digest not in found:
            found.append(recorded.digest)
    return found


def drift_of(
    service: str,
    ref: ImageRef,
    repo_digests: Sequence[str],
    remote_digest: str | None,
    platform_digest: str | None = None,
    error: str = "",
) -> Drift:
    """`repo_digests`: the running image's RepoDigests (`name@sha256:...`, Docker's form,
    e.g. "127.0.0.1:5000/web@sha256:..", "nginx@sha256:.." for docker.io/library/nginx);
    compare the one for `ref`'s repository (normalised on both sides) with the registry's
    digest for the tag, and with `platform_digest` (the index entry for the local platform)
    when the registry serves an index: running equal to either is up to date.

    In order: no repo digest for the repository -> not drifted (built or loaded locally); a
    reference pinned by digest -> compared with its pin, the registry not needed; `error`
    (the registry could not be asked) -> not drifted, "registry unreachable: <error>"; no
    remote digest -> not drifted (the registry has no such tag); else the comparison."""
    configured = str(ref)
    running = running_digests(ref, repo_digests)
    if not running:
        remote = ref.digest or remote_digest or ""
        return Drift(service, configured, "", remote, False, NO_REPO_DIGEST)
    if ref.digest:
        remote = ref.digest
    elif error:
        reason = f"registry unreachable: {error[: _LABEL_CAP * 2]}"
        return Drift(service, configured, running[0], "", False, reason)
    elif not remote_digest:
        reason = f"the registry has no tag {ref.tag!r}"
        return Drift(service, configured, running[0], "", False, reason)
    else:
        remote = remote_digest
    accepted = {remote, platform_digest} if platform_digest else {remote}
    match = next((d for d in running if d in accepted), None)
    if match is not None:
        return Drift(service, configured, match, remote, False, UP_TO_DATE)
    has = (
        f"pinned to {short_digest(remote)}"
        if ref.digest
        else f"registry has {short_digest(remote)}"
    )
    if platform_digest and platform_digest != remote:
        has += f" ({short_digest(platform_digest)} for this platform)"
    reason = f"{has}, running {short_digest(running[0])}"
    return Drift(service, configured, running[0], remote, True, reason)
