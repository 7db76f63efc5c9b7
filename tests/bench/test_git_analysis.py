"""bench.git's pure analysis on a hand-written push record (plain data, as `record.one_push`
records it): the times from the hook, the first answer with the new content, the failed
requests, the builds per service, and the targets."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.git.analyse import push_figures, served, summarise, targets

SHA = "6a6e216a1c433f4df521a2fc2943a30ba8aff956"
H = 1000.0  # the hook is sent


def entry(at: float, kind: str, service: str = "", **fields: Any) -> list[Any]:
    data = {"at": f"{at:.3f}", "event": kind, "service": service}
    data.update({k: str(v) for k, v in fields.items()})
    return [f"{round(at * 1000) + 1}-0", data]


def record(hook: bool = True, **over: Any) -> dict[str, Any]:
    events = [
        entry(H + 0.085, "git-updated", commit=SHA, seconds="0.079"),
        entry(H + 0.088, "build-started", "web", reason=f"1 files changed in {SHA[:12]} (push)"),
        entry(H + 0.450, "built", "web", seconds="0.362"),
        entry(H + 5.340, "build-succeeded", "web", seconds="0.362"),
        entry(H + 5.341, "deployed", "web", seconds="4.877"),
        entry(H + 5.342, "job-finished", "web", result="ok"),
    ]
    samples = [
        [H - 0.5, 200, "v0", 0.003],
        [H + 1.40, 200, "v0", 0.003],
        [H + 1.42, 200, "v1", 0.003],
        [H + 1.44, 502, "Bad Gateway", 0.003],
        [H + 3.50, 200, "v0", 0.003],
        [H + 3.52, 200, "v1", 0.003],
        [H + 3.54, 200, "v1", 0.003],
    ]
    rec: dict[str, Any] = {
        "n": 1,
        "content": "v1",
        "sha": SHA,
        "push_started": H - 0.06,
        "pushed": H - 0.001,
        "events": events,
        "samples": samples,
        "version_commit": SHA,
    }
    if hook:
        rec |= {"hook_sent": H, "hook_answered": H + 0.009, "hook_status": 202}
    rec.update(over)
    return rec


def test_push_figures_from_the_hook() -> None:
    f = push_figures(record())
    assert f["hook_to_answer"] == pytest.approx(0.009)
    assert f["to_git_updated"] == pytest.approx(0.085, abs=1e-6)
    assert f["git_updated_seconds"] == 0.079
    assert f["git_updated_redis"] == pytest.approx(0.086, abs=1e-6)  # the entry id's ms
    assert f["to_build_started"] == pytest.approx(0.088, abs=1e-6)
    assert f["build"] == pytest.approx(0.362, abs=1e-6)
    assert f["rollout"] == pytest.approx(4.891, abs=1e-6)
    assert f["to_live"] == pytest.approx(1.42, abs=1e-6)  # the first v1, by send time
    assert f["build_started_to_live"] == pytest.approx(1.332, abs=1e-6)
    assert f["to_new_alone"] == pytest.approx(3.52, abs=1e-6)  # after the last other answer
    assert f["to_finished"] == pytest.approx(5.342, abs=1e-6)
    assert (f["failed"], f["requests"]) == (1, 7)
    assert f["builds"] == {"web": 1, "api": 0}
    assert not f["build_started_before_git_updated"]


def test_poll_push_counts_from_the_push() -> None:
    f = push_figures(record(hook=False))
    assert f["hook_to_answer"] is None
    assert f["to_build_started"] == pytest.approx(0.089, abs=1e-6)
    assert f["push_to_git_updated"] == pytest.approx(0.086, abs=1e-6)
    assert f["reason_names_commit"] and f["version_names_commit"]


def test_a_build_the_watcher_started_before_the_move_was_handed_over() -> None:
    """The fast-forward's write seen by the file watcher first: the build of the push starts
    as a plain edit, before git-updated, its reason without the commit."""
    rec = record()
    rec["events"][1] = entry(H + 0.080, "build-started", "web", reason="1 files changed")
    rec["events"].insert(0, entry(H + 0.01, "build-started", "api", reason="something"))
    f = push_figures(rec)
    assert f["to_build_started"] == pytest.approx(0.080, abs=1e-6)
    assert f["build_started_before_git_updated"] and not f["reason_names_commit"]
    assert f["builds"] == {"web": 1, "api": 1}
    s = summarise([f])
    assert s["reason_without_commit"] == 1 and s["build_started_before_git_updated"] == 1


def test_never_served_and_missing_events() -> None:
    rec = record(samples=[[H + 1, 200, "v0", 0.0]], events=[])
    f = push_figures(rec)
    assert f["to_live"] is None and f["to_build_started"] is None and f["build"] is None
    assert served([[1.0, 200, "v1", 0.0], [2.0, 200, "v1", 0.0]], "v1") == (1.0, 1.0)


def test_summary_and_targets() -> None:
    pushes = [push_figures(record()), push_figures(record(samples=[[H + 2, 200, "v1", 0.0]]))]
    s = summarise(pushes)
    assert s["to_live"]["median"] == pytest.approx(1.71, abs=1e-6)
    assert s["failed"] == 1 and s["failed_per_push"] == [1, 0]
    assert s["builds"] == {"web": [1, 1], "api": [0, 0]}
    assert math.isclose(s["to_build_started"]["median"], 0.088, abs_tol=1e-6)
    t = targets(s, None, other_builds=0)
    assert t["sidecar_share"]["ok"] and not t["failed_requests"]["ok"]
    assert t["other_not_rebuilt"]["ok"] and t["one_build_per_push"]["ok"]
    slow = summarise([push_figures(record(hook_sent=H - 0.05))])
    assert not targets(slow, s, other_builds=1)["sidecar_share"]["ok"]
