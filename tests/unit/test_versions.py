"""Which deploy makes a new version (sidecar.core.versions): a table."""

from __future__ import annotations

import json

import pytest

from sidecar.core.planner import Kind
from sidecar.core.versions import (
    Version,
    is_newer,
    next_version,
    rollback_target,
    tags_to_prune,
    version_tag,
)

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
        "commit": "",
        "digest": "",
    }
    assert Version.from_dict(raw) == V3
    with_commit = Version("web", 4, "sha256:bbb", 101.0, "push", "c0ffee" * 6 + "1234")
    assert Version.from_dict(json.loads(with_commit.to_json())) == with_commit
    del raw["commit"], raw["digest"]  # a record written before versions carried them
    assert Version.from_dict(raw) == V3


def test_the_commit_goes_with_the_version() -> None:
    got = next_version(V3, "web", Kind.BUILD, "sha256:bbb", 200.0, "push", "abc")
    assert got is not None and got.commit == "abc"


def v(n: int, image: str) -> Version:
    return Version("web", n, image, float(n), f"deploy {n}")


def rb(n: int, image: str, to: int) -> Version:
    return Version("web", n, image, float(n), f"command c1: rollback to v{to}")


@pytest.mark.parametrize(
    ("versions", "current", "kept", "target"),
    [
        ([], "sha256:a", 3, None),
        ([v(1, "sha256:a")], "sha256:a", 3, None),  # nothing earlier
        ([v(1, "sha256:a"), v(2, "sha256:b")], "sha256:b", 3, 1),
        # a redeploy of the same image is not a step back
        ([v(1, "sha256:a"), v(2, "sha256:b"), v(3, "sha256:b")], "sha256:b", 3, 1),
        # a build back to bytes seen before (a revert) is a step of its own
        (
            [v(1, "sha256:a"), v(2, "sha256:b"), v(3, "sha256:c"), v(4, "sha256:b")],
            "sha256:b",
            4,
            3,
        ),
        # a version made by a rollback stands for its target: a second rollback goes on
        (
            [v(1, "sha256:a"), v(2, "sha256:b"), v(3, "sha256:c"), rb(4, "sha256:b", 2)],
            "sha256:b",
            4,
            1,
        ),
        # beyond the kept images: gone
        ([v(1, "sha256:a"), v(2, "sha256:b"), v(3, "sha256:c")], "sha256:c", 1, None),
        ([v(1, ""), v(2, "sha256:b")], "sha256:b", 3, None),  # Docker did not say its image
    ],
)
def test_rollback_target(
    versions: list[Version], current: str, kept: int, target: int | None
) -> None:
    got = rollback_target(versions, current, kept)
    assert (got.version if got else None) == target


@pytest.mark.parametrize(
    ("tags", "newest", "kept", "pruned"),
    [
        (["sidecar-v1", "sidecar-v2", "sidecar-v3", "latest"], 3, 2, ["sidecar-v1"]),
        (["sidecar-v1", "sidecar-v2"], 2, 3, []),
        (["sidecar-v10", "sidecar-v9", "sidecar-vx", "v1"], 12, 3, ["sidecar-v9"]),
    ],
)
def test_tags_to_prune(tags: list[str], newest: int, kept: int, pruned: list[str]) -> None:
    assert tags_to_prune(tags, newest, kept) == pruned
    assert version_tag(7) == "sidecar-v7"
