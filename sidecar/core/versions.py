"""Deployed versions: every deploy of a service gets a number, increasing by one per service,
recorded with the image it runs (`GET /v1/watch` long-polls for a newer one). Pure: the
reactor asks `next_version` and writes what it returns through the store."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from sidecar.core.planner import Kind

# versions kept per service in Redis (the newest); status shows them all, newest first
KEPT = 10


@dataclass(frozen=True)
class Version:
    service: str
    version: int
    image: str  # the image id the service runs (sha256:...), '' when Docker did not say
    at: float  # unix time of the deploy
    reason: str  # what caused it: the job's reason ("3 files changed", "command ...")
    commit: str = ""  # the workspace's git commit when the deploy finished ('' without git)
    digest: str = ""  # the registry digest the build was pushed as (x-sidecar push)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Version:
        return cls(
            str(raw.get("service", "")),
            int(raw.get("version", 0)),
            str(raw.get("image", "")),
            float(raw.get("at", 0.0)),
            str(raw.get("reason", "")),
            str(raw.get("commit", "")),
            str(raw.get("digest", "")),
        )


def next_version(
    last: Version | None,
    service: str,
    kind: Kind,
    image: str,
    at: float,
    reason: str,
    commit: str = "",
    digest: str = "",
) -> Version | None:
    """The version a successful deploy of `kind` makes, or None when it makes none.

    Builds, rollouts and recreates are deploys: each gets a new number, also when the image
    is the same (`redeploy`). A converge (scaling, replacing a crashed instance) starts more
    of what runs already: it makes a version only when the service has none yet (its first
    deploy seen since the sidecar started recording) or its image changed underneath.
    Syncs copy files into running containers and make none."""
    if kind is Kind.SYNC:
        return None
    if kind is Kind.CONVERGE and last is not None and (not image or image == last.image):
        return None
    number = (last.version if last else 0) + 1
    return Version(service, number, image, round(at, 3), reason, commit, digest)


def is_newer(record: Version | None, after: int) -> bool:
    """Whether a watch for versions after `after` is answered by `record` (the newest)."""
    return record is not None and record.version > after


# --- images kept for rollback ---------------------------------------------------------
TAG_PREFIX = "sidecar-v"


def version_tag(version: int) -> str:
    """The tag that keeps a version's image (`<image>:sidecar-v7`)."""
    return f"{TAG_PREFIX}{version}"


def tags_to_prune(tags: list[str], newest: int, kept: int) -> list[str]:
    """The version tags of a repository older than the `kept` newest versions (other tags
    are not the sidecar's and are left alone)."""
    out = []
    for tag in tags:
        number = tag.removeprefix(TAG_PREFIX)
        if tag.startswith(TAG_PREFIX) and number.isdigit() and int(number) <= newest - kept:
            out.append(tag)
    return sorted(out)


_ROLLBACK = re.compile(r"rollback to v([0-9]+)")


def rollback_reason(version: Version) -> str:
    return f"rollback to v{version.version}"


def rollback_target(versions: list[Version], current_image: str, kept: int) -> Version | None:
    """The version a rollback returns to: walking back from the newest, past the versions
    running the current image, the first with another known image. A version made by a
    rollback ("rollback to v2") stands for v2: a second rollback goes on from there (to
    v1), not back to what the first one left. Only the `kept` newest versions still have
    their image."""
    by_number = {v.version: v for v in versions}
    if not by_number:
        return None
    n = max(by_number)
    floor = n - kept
    while n > floor:
        v = by_number.get(n)
        if v is None:
            n -= 1
            continue
        jump = _ROLLBACK.search(v.reason)
        if jump and int(jump.group(1)) < n:
            n = int(jump.group(1))
            continue
        if v.image and v.image != current_image:
            return v
        n -= 1
    return None
