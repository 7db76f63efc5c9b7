"""Digest drift ("smart redeploy"): for every image-only service, the digest the running
image was pulled as (its RepoDigests) against the registry's current digest for the tag.
Run on a worker thread of its own (registry requests take up to seconds); the reactor
stores the report, answers the command and, with `apply`, pulls the drifted services.

Rate limits: a check is one manifest HEAD per service (Docker Hub does not count HEADs as
pulls). For a multi-platform image Docker records the index's digest, so a HEAD answers
most checks alone; only when the index digest differs is the index fetched (one GET) to
compare the entry for this machine's platform: an index re-pushed for other platforms
only is no drift here."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import Any, Protocol

from loguru import logger

from sidecar.core.errors import RegistryError
from sidecar.core.images import (
    INDEX_TYPES,
    Drift,
    ImageError,
    Platform,
    drift_of,
    local_platform,
    parse_ref,
    platform_entry,
    running_digests,
)
from sidecar.core.model import ServiceSpec
from sidecar.core.ports import DockerPort


class Head(Protocol):
    @property
    def digest(self) -> str: ...
    @property
    def media_type(self) -> str: ...


class RegistryPort(Protocol):
    """What the drift check needs of registries (sidecar.adapters.registry.Registries)."""

    def head_manifest(self, registry: str, repository: str, reference: str) -> Head: ...
    def get_manifest(
        self, registry: str, repository: str, reference: str
    ) -> tuple[Head, dict[str, Any]]: ...


def drift_summary(drifts: list[Drift], applied: bool) -> str:
    """One line: `web drifted (registry has sha256:..., running sha256:...); api ok (...)`."""
    if not drifts:
        return "no image-only service to check"
    parts = [f"{d.service} {'drifted' if d.drifted else 'ok'} ({d.reason})" for d in drifts]
    n = sum(d.drifted for d in drifts)
    tail = f"; {n} pulled" if applied and n else ("; nothing applied" if n else "")
    return f"{len(drifts)} checked: " + "; ".join(parts) + tail


def this_platform() -> Platform:
    return local_platform(platform.machine(), platform.system())


def check(
    services: Iterable[ServiceSpec],
    docker: DockerPort,
    registries: RegistryPort,
    here: Platform,
) -> list[Drift]:
    """One Drift per image-only service (built ones have no registry to drift from)."""
    out = []
    for spec in services:
        if not spec.image or spec.built or spec.invalid:
            continue
        try:
            ref = parse_ref(spec.image)
        except ImageError as exc:
            out.append(Drift(spec.name, spec.image, "", "", False, f"not a reference: {exc}"))
            continue
        try:
            digests = docker.repo_digests(spec)
        except Exception as exc:  # noqa: BLE001 - Docker away: this service unknown
            out.append(Drift(spec.name, str(ref), "", "", False, f"docker: {exc}"))
            continue
        out.append(_one(spec.name, ref, digests, registries, here))
    return out


def _one(
    name: str, ref: Any, digests: list[str], registries: RegistryPort, here: Platform
) -> Drift:
    if ref.digest or not running_digests(ref, digests):
        return drift_of(name, ref, digests, None)  # pinned, or not from a registry: no request
    running = running_digests(ref, digests)
    try:
        head = registries.head_manifest(ref.registry, ref.repository, ref.tag)
        entry = None
        if head.media_type in INDEX_TYPES and head.digest not in running:
            _, index = registries.get_manifest(ref.registry, ref.repository, head.digest)
            entry = platform_entry(index, here)
            # Docker records the index it pulled: its entry for this platform against the
            # new one (an index re-pushed for other platforms only is no drift here)
            if entry is not None and _running_entry(registries, ref, running, here) == entry:
                reason = "up to date (this platform's image is the same in the new index)"
                return Drift(name, str(ref), running[0], head.digest, False, reason)
    except RegistryError as exc:
        if exc.status == 404:
            return drift_of(name, ref, digests, None)
        logger.warning("drift: {} ({}): {}", name, ref, exc)
        return drift_of(name, ref, digests, None, error=str(exc))
    return drift_of(name, ref, digests, head.digest, entry)


def _running_entry(
    registries: RegistryPort, ref: Any, running: list[str], here: Platform
) -> str | None:
    """This platform's manifest digest of the index the running image was pulled as (None
    when the registry no longer has it, or it was no index)."""
    try:
        head, index = registries.get_manifest(ref.registry, ref.repository, running[0])
    except RegistryError:
        return None
    return platform_entry(index, here) if head.media_type in INDEX_TYPES else None
