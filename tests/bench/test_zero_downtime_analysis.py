"""bench.zero_downtime's window analysis on a small hand-written window (plain data, as
`record.redeploy` records it): edit-to-live is the start of the final unbroken run of
new-content answers."""

from __future__ import annotations

from typing import Any

from bench.zero_downtime.analyse import analyse_redeploy

W = 100.0  # the write


def window(answers: list[tuple[float, int, str]]) -> dict[str, Any]:
    requests = [[W + t, W + t + 0.002, status, body] for t, status, body in answers]
    return {
        "index": 0,
        "since": W,
        "end": W + 5.0,
        "content": "new",
        "result": "ok",
        "finished_at": W + 2.5,
        "replicas_after": 2,
        "tool": {"job": "rollout", "result": "ok"},
        "requests": requests,
    }


def test_rolling_update_window() -> None:
    r = analyse_redeploy(
        window(
            [
                (0.02, 200, "old"),
                (0.70, 200, "new"),  # first new answer, old still served beside it
                (0.72, 200, "old"),
                (1.00, 502, "Bad Gateway"),
                (1.20, 200, "new"),  # live from here on
                (1.40, 200, "new"),
                (4.90, 200, "new"),
            ]
        )
    )
    assert r["failed"] == 1 and r["failed_by_kind"] == {"502": 1}
    assert abs(r["first_new"] - 0.70) < 1e-9
    assert abs(r["edit_to_live"] - 1.20) < 1e-9
    assert abs(r["last_old"] - 0.72) < 1e-9
    assert r["old_after_first_new"] == 1
    assert (r["finished_s"], r["window_s"], r["requests"]) == (2.5, 5.0, 7)


def test_never_live_when_the_last_answer_is_old_or_failed() -> None:
    r = analyse_redeploy(window([(0.5, 200, "new"), (1.0, 0, "TimeoutError: timed out")]))
    assert r["edit_to_live"] is None
    assert r["failed_by_kind"] == {"error": 1}
