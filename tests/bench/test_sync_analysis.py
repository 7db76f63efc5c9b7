"""bench.sync's pure analysis: compose watch's output and the sidecar's events turned into
counters, the end of a sync+restart, the bulk change's time, and the targets."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.sync import report as sync_report
from bench.sync.analyse import (
    Finish,
    bulk_live,
    delta,
    edits_figures,
    restart_finished,
    sidecar_counters,
    sync_phases,
    targets,
    watch_counters,
)
from bench.zero_downtime import analyse as zda

# compose watch 2.40.3's output, as recorded by a run (the delete's exec output is binary)
WATCH_LOG = """Watch enabled
Syncing service "web" after 1 changes were detected
Syncing service "other" after 7 changes were detected
\x01\x00\x00\x00\x00\x00\x00\ufffdOCI runtime exec failed: exec: "rm": executable file not found
time="2026-12-01T23:15:55Z" level=warning msg="Error handling changed files: deleting paths \
in 33053eda: exit code 126"
Syncing service "web" after 3031 changes were detected
Rebuilding service(s) ["web" "other"] after changes were detected...
service(s) ["web"] restarted
"""


def test_watch_counters() -> None:
    c = watch_counters(WATCH_LOG, "web")
    assert {k: v for k, v in c.items() if k != "messages"} == {
        "syncs": 2,
        "batches": 2,
        "files": 3032,
        "builds": 1,
        "restarts": 1,
        "fallbacks": 0,
        "failures": 1,
    }
    assert c["messages"] == [
        "Error handling changed files: deleting paths in 33053eda: exit code 126"
    ]
    assert watch_counters(WATCH_LOG, "other")["restarts"] == 0


def ev(kind: str, at: float, **fields: Any) -> dict[str, str]:
    return {
        "event": kind,
        "service": "web",
        "at": str(at),
        **{k: str(v) for k, v in fields.items()},
    }


EVENTS = [
    ev("sync-started", 100.02, files=1, deletes=0, containers=1),
    ev("synced", 100.06, files=1, deleted=0, bytes=40, containers=1, seconds=0.03),
    ev("job-finished", 100.07, result="ok"),
    ev("sync-started", 200.1, files=0, deletes=1, containers=1),
    ev("sync-fallback", 200.2, reason="no rm in the image"),
    ev("build-started", 200.25),
    ev("sync-failed", 300.0, error="container gone"),
]


def test_sidecar_counters_and_delta() -> None:
    before = sidecar_counters(EVENTS[:3])
    after = sidecar_counters(EVENTS)
    assert delta(before, after) == {
        "syncs": 0,
        "batches": 1,
        "files": 0,
        "builds": 1,
        "restarts": 0,
        "fallbacks": 1,
        "failures": 1,
        "messages": [
            "sync-fallback: reason=no rm in the image",
            "sync-failed: error=container gone",
        ],
    }
    assert before["syncs"] == 1 and before["files"] == 1


def test_sync_phases_take_the_first_batch_after_the_write() -> None:
    p = sync_phases(EVENTS, 100.0)
    assert p["write_to_sync_started"] == pytest.approx(0.02)
    assert p["sync"] == pytest.approx(0.03)
    assert p["write_to_synced"] == pytest.approx(0.06)
    assert (p["sync_files"], p["sync_bytes"]) == (1, 40)
    assert sync_phases(EVENTS, 150.0) == {"write_to_sync_started": pytest.approx(50.1)}


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], None),
        ([ev("sync-started", 1), ev("synced", 2)], None),
        # a sync job's own job-finished does not end it: the restart does
        (
            [ev("synced", 2), ev("job-finished", 2.1, result="ok"), ev("restarted", 4)],
            Finish(4.0, "ok"),
        ),
        ([ev("sync-failed", 3, error="boom")], Finish(3.0, "sync-failed: boom")),
        (
            [ev("sync-fallback", 2, reason="no rm"), ev("job-finished", 5, result="ok")],
            Finish(5.0, "sync-fallback (no rm), then job ok"),
        ),
        ([ev("job-finished", 6, result="failed")], Finish(6.0, "job-finished: failed")),
    ],
)
def test_restart_finished(events: list[dict[str, str]], expected: Finish | None) -> None:
    assert restart_finished(events) == expected


@pytest.mark.parametrize(
    ("sentinels", "first_missing", "all_s", "expected"),
    [
        (0.8, 0, 2.9, 0.8),  # every file was served right after the sentinels
        (0.8, 12, 1.4, 1.4),  # the sweep found some missing: when the last came
        (0.8, 12, None, None),
        (None, 0, 2.0, None),  # the sentinels were never all served
    ],
)
def test_bulk_live(
    sentinels: float | None, first_missing: int, all_s: float | None, expected: float | None
) -> None:
    assert bulk_live(sentinels, first_missing, all_s) == expected


def measured(median: float, timeouts: int = 0) -> dict[str, Any]:
    return {
        "edits": 5,
        "timeouts": timeouts,
        "median": median,
        "min": median,
        "max": median,
        "container_start": {"median": float("nan")},
        "phases_median": {},
    }


def counters(**over: Any) -> dict[str, Any]:
    base = {"syncs": 5, "batches": 5, "files": 5, "builds": 0, "restarts": 0}
    return base | {"fallbacks": 0, "failures": 0, "messages": []} | over


def test_edits_figures() -> None:
    requests = [
        [1.0, 1.1, 200, "a"],
        [1.2, 2.2, 0, "TimeoutError: timed out"],
        [1.3, 1.4, 502, "Bad Gateway"],
        [1.4, 1.5, 0, "ConnectionResetError: [Errno 104] Connection reset by peer"],
        [1.5, 2.5, 0, "TimeoutError: timed out"],
    ]
    f = edits_figures(measured(0.1), requests, 2, counters())
    kinds = {"error TimeoutError": 2, "502": 1, "error ConnectionResetError": 1}
    assert (f["requests"], f["failed"], f["failed_by_kind"]) == (5, 4, kinds)
    assert f["failed_per_edit"] == pytest.approx(0.8)
    assert f["creates_per_edit"] == pytest.approx(0.4)
    assert f["syncs_per_edit"] == 1.0


def results(sidecar: bool, **over: Any) -> dict[str, Any]:
    """A complete set of one tool's figures (the sidecar meeting every target)."""
    edits = edits_figures(measured(0.1 if sidecar else 0.6), [], 0, counters())
    rebuild = edits_figures(measured(0.9 if sidecar else 2.0), [], 5, counters(builds=5))
    out = {
        "edits": edits,
        "touch": {"syncs": 0 if sidecar else 1},
        "delete": {"wait": 10.0, "seconds": 0.1 if sidecar else None},
        "bulk": {
            "files": 3000,
            "wait": 20.0,
            "checkout_s": 0.6,
            "live_s": 1.2,
            "missing_after": 0,
            "counters": counters(batches=1),
        },
        "restart": {
            "failed_in_windows": 0 if sidecar else 120,
            "failed_outside_windows": 0,
            "redeploys_not_ok": 0,
        },
        "rebuild": rebuild,
    }
    return out | over


def verdicts(sc: dict[str, Any], cw: dict[str, Any]) -> dict[str, bool]:
    return {t.name: t.ok for t in targets(sc, cw)}


def test_every_target_met() -> None:
    got = verdicts(results(True), results(False))
    assert len(got) == 10 and all(got.values()), got


@pytest.mark.parametrize(
    ("change", "missed"),
    [
        ({"edits": edits_figures(measured(0.19), [], 0, counters())}, "sync_edit_to_live_le_0.3x"),
        (
            {"edits": edits_figures(measured(0.1, 1), [], 0, counters())},
            "sync_edit_to_live_le_0.3x",
        ),
        (
            {"edits": edits_figures(measured(0.1), [[1, 2, 502, ""]], 0, counters())},
            "sync_zero_failed_requests",
        ),
        (
            {"edits": edits_figures(measured(0.1), [], 1, counters())},
            "sync_zero_containers_created",
        ),
        ({"touch": {"syncs": 1}}, "touch_zero_syncs"),
        ({"delete": {"wait": 10.0, "seconds": None}}, "delete_propagated"),
        (
            {
                "bulk": {
                    "files": 3000,
                    "wait": 20.0,
                    "checkout_s": 0.6,
                    "live_s": 2.61,
                    "missing_after": 0,
                    "counters": counters(batches=1),
                }
            },
            "bulk_live_within_2s",
        ),
        (
            {
                "bulk": {
                    "files": 3000,
                    "wait": 20.0,
                    "checkout_s": 0.6,
                    "live_s": None,
                    "missing_after": 3,
                    "counters": counters(batches=2),
                }
            },
            "bulk_live_within_2s,bulk_zero_missing,bulk_one_batch",
        ),
        (
            {
                "restart": {
                    "failed_in_windows": 0,
                    "failed_outside_windows": 1,
                    "redeploys_not_ok": 0,
                }
            },
            "restart_zero_failed_requests",
        ),
        (
            {
                "restart": {
                    "failed_in_windows": 0,
                    "failed_outside_windows": 0,
                    "redeploys_not_ok": 1,
                }
            },
            "restart_zero_failed_requests",
        ),
        (
            {"rebuild": edits_figures(measured(1.3), [], 5, counters())},
            "rebuild_edit_to_live_le_0.6x",
        ),
    ],
)
def test_each_target_missed(change: dict[str, Any], missed: str) -> None:
    got = verdicts(results(True, **change), results(False))
    assert {name for name, ok in got.items() if not ok} == set(missed.split(","))


def test_a_nan_or_missing_phase_is_no_pass() -> None:
    nan = edits_figures(measured(float("nan")), [], 0, counters())
    assert not verdicts(results(True, edits=nan), results(False))["sync_edit_to_live_le_0.3x"]
    assert math.isnan(nan["median"])
    # a phase only one tool ran has no comparison target; the sidecar's own ones stay
    got = verdicts(results(True), {})
    assert "sync_edit_to_live_le_0.3x" not in got and "touch_zero_syncs" in got


def full(sidecar: bool) -> dict[str, Any]:
    """`results` with every figure the report prints, made by the same functions `record`
    uses where they are pure."""
    out = results(sidecar)
    out["touch"] |= {"paths_touched": 503, "builds": 0, "creates": 0, "counters": counters()}
    out["delete"] |= {"statuses": [[200, 0.0], [404, 0.1]], "creates": 0, "phases": {}}
    out["delete"]["counters"] = counters(failures=0 if sidecar else 1, messages=["rm failed"])
    out["bulk"] |= {"creates": 0, "phases": {"sync": 0.9}}
    window = {
        "since": 100.0,
        "end": 105.0,
        "content": "new",
        "result": "ok",
        "finished_at": 102.0,
        "replicas_after": 2,
        "tool": {},
        "requests": [[100.5, 100.51, 200, "new"]],
    }
    runs = [zda.analyse_redeploy(window | {"index": i}) for i in range(5)]
    load = {"seconds": 30.0, "late_ticks": 0, "replicas_final": 2}
    out["restart"] = zda.summarise(5, runs, zda.analyse([], 98.0, "initial"), [], load)
    out["restart"]["counters"] = counters(restarts=5)
    if not sidecar:
        out["restart"]["failed_in_windows"] = 120
    return out


def test_report_prints_every_phase_and_verdict() -> None:
    text, found = sync_report.report(full(True), full(False), 50.0)
    for title in ("1. sync", "2. touch", "3. delete", "4. git checkout", "5. sync+restart"):
        assert title in text
    assert "6. rebuild" in text
    assert text.count("PASS") == 2 * len(found) == 20  # in the table and in the list
    assert "never within 10 s" in text  # compose watch's delete
    assert "compose watch, delete: rm failed" in text
