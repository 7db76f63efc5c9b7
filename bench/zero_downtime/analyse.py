"""Figures of recorded redeploy windows. Pure: a redeploy is plain data (see
`record.redeploy`): its requests as [sent, done, status, body], the write time and content,
and the tool's own timings."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.common import Json, median


def ok(sample: list[Any]) -> bool:
    return bool(sample[2] == 200)


def analyse(samples: list[list[Any]], since: float, content: str) -> Json:
    """Figures of one window: its requests ([sent, done, status, body], sorted by send time,
    all sent in it), the write at `since` of the new `content`."""
    failed = [s for s in samples if not ok(s)]
    kinds = Counter("error" if s[2] == 0 else str(s[2]) for s in failed)
    # edit-to-live: the first request of the final unbroken run of new-content answers
    live: float | None = None
    for s in reversed(samples):
        if s[2] == 200 and s[3] == content:
            live = s[0] - since
        else:
            break
    first_new = next((s[0] - since for s in samples if ok(s) and s[3] == content), None)
    old = [s for s in samples if ok(s) and s[3] != content]
    return {
        "requests": len(samples),
        "failed": len(failed),
        "failed_by_kind": dict(kinds),
        "failed_examples": [f"{s[0] - since:+.3f}s {s[2]} {s[3][:120]}" for s in failed][:5],
        "failed_first_last_s": ([failed[0][0] - since, failed[-1][0] - since] if failed else None),
        "edit_to_live": live,
        "first_new": first_new,
        "last_old": old[-1][0] - since if old else None,
        "old_after_first_new": sum(
            1 for s in old if first_new is not None and s[0] - since > first_new
        ),
    }


def analyse_redeploy(rec: Json) -> Json:
    """The figures of one recorded redeploy window."""
    out = analyse(rec["requests"], rec["since"], rec["content"])
    out.update(
        {
            "index": rec["index"],
            "result": rec["result"],
            "finished_s": rec["finished_at"] - rec["since"],
            "window_s": rec["end"] - rec["since"],
            "replicas_after": rec["replicas_after"],
            "tool": rec["tool"],
        }
    )
    if "tool_output" in rec:
        out["tool_output"] = rec["tool_output"]
    return out


def summarise(
    redeploys: int, runs: list[Json], warm: Json, everything: list[list[Any]], load: Json
) -> Json:
    """One tool's figures over its redeploys (`analyse_redeploy` of each), the warm-up
    window, every request of the run and the load's own counters (`seconds`, `late_ticks`,
    `replicas_final`)."""
    duration = float(load["seconds"])
    in_windows = sum(r["requests"] for r in runs)
    failed_total = sum(r["failed"] for r in runs)
    failed_all = sum(1 for s in everything if not ok(s))
    lives = [r["edit_to_live"] for r in runs if r["edit_to_live"] is not None]
    finished = [r["finished_s"] for r in runs]
    first_new = [r["first_new"] for r in runs if r["first_new"] is not None]
    return {
        "redeploys": redeploys,
        "per_redeploy": runs,
        "warmup": warm,
        "requests_sent": len(everything),
        "requests_in_windows": in_windows,
        "load_seconds": duration,
        "achieved_rate": len(everything) / duration if duration > 0 else float("nan"),
        "late_ticks": load["late_ticks"],
        "failed_in_windows": failed_total,
        "failed_per_redeploy": [r["failed"] for r in runs],
        "failed_outside_windows": failed_all - failed_total,
        "failed_by_kind": dict(sum((Counter(r["failed_by_kind"]) for r in runs), Counter[str]())),
        "edit_to_live": {
            "seconds": [r["edit_to_live"] for r in runs],
            "median": median(lives),
            "min": min(lives) if lives else float("nan"),
            "max": max(lives) if lives else float("nan"),
            "not_live": len(runs) - len(lives),
        },
        "first_new_median": median(first_new),
        "finished": {"median": median(finished), "max": max(finished)},
        "redeploys_not_ok": sum(1 for r in runs if r["result"] != "ok"),
        "replicas_after": [r["replicas_after"] for r in runs],
        "replicas_final": load["replicas_final"],
    }
