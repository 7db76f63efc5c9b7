"""Deployed versions: every deploy of a service gets a number, increasing by one per service,
recorded with the image it runs (`GET /v1/watch` long-polls for a newer one). Pure: the
reactor asks `next_version` and writes what it returns through the store."""

from __future__ import annotations

import json
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
        )


def next_version(
    last: Version | None, service: str, kind: Kind, image: str, at: float, reason: str
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
    return Version(service, (last.version if last else 0) + 1, image, round(at, 3), reason)


def is_newer(record: Version | None, after: int) -> bool:
    """Whether a watch for versions after `after` is answered by `record` (the newest)."""
    return record is not None and record.version > after
