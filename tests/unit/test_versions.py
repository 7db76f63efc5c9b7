"""Which deploy makes a new version (sidecar.core.versions): a table."""

from __future__ import annotations

import json

import pytest

from sidecar.core.planner import Kind
from sidecar.core.versions import Version, is_newer, next_version

V3 = Version("web", 3, "sha256:aaa", 100.0, "2 files changed")


@pytest.mark.parametrize(
    ("last", "kind", "image", "number"),
    [
        (None, Kind.BUILD, "sha256:aaa", 1),
        (None, Kind.CONVERGE, "sha256:aaa", 1),  # first seen: the running state is version 1
        (None, Kind.CONVERGE, "", 1),
        (V3, Kind.BUILD, "sha256:bbb", 4),
        (V3, Kind.BUILD, "sha256:aaa", 4),  # a rebuild to the same bytes is still a deploy
        (V3, Kind.ROLLOUT, "sha256:aaa", 4),  # redeploy
        (V3, Kind.UP, "sha256:aaa", 4),  # a plain service recreated
        (V3, Kind.CONVERGE, "sha256:aaa", None),  # scaled, or a crashed instance replaced
        (V3, Kind.CONVERGE, "", None),  # Docker did not say: no guess
        (V3, Kind.CONVERGE, "sha256:ccc", 4),  # the image changed underneath
        (V3, Kind.SYNC, "sha256:ccc", None),
        (None, Kind.SYNC, "sha256:ccc", None),
    ],
)
def test_next_version(last: Version | None, kind: Kind, image: str, number: int | None) -> None:
    got = next_version(last, "web", kind, image, 200.12345, "why")
    if number is None:
        assert got is None
    else:
        assert got == Version("web", number, image, 200.123, "why")


@pytest.mark.parametrize(
    ("record", "after", "newer"),
    [(None, 0, False), (V3, 0, True), (V3, 2, True), (V3, 3, False), (V3, 9, False)],
)
def test_is_newer(record: Version | None, after: int, newer: bool) -> None:
    assert is_newer(record, after) is newer


def test_record_round_trips_through_json() -> None:
    raw = json.loads(V3.to_json())
    assert raw == {
        "service": "web",
        "version": 3,
        "image": "sha256:aaa",
        "at": 100.0,
        "reason": "2 files changed",
    }
    assert Version.from_dict(raw) == V3
