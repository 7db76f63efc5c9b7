"""The figures of one push, from its record (plain data, as `record.one_push` makes it), and
the phase summaries and targets. Pure: nothing here talks to a process.

A push record:

- `content` (`vN`), `sha`, `push_started`/`pushed` (unix times around `git push`), for the
  webhook phase `hook_sent`/`hook_answered`/`hook_status`;
- `events`: the sidecar's events stream from just before the push, `[entry id, fields]`
  (every field a string, `at` the daemon's unix time with ms);
- `samples`: the load's requests through Traefik, `[sent, status, body, seconds]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bench.common import Json, median

SERVICE = "web"  # the service every push changes
OTHER = "api"  # the service no push changes
SHARE_TARGET_S = 0.100  # hook -> build-started, median

Event = dict[str, str]


def _events(record: Json) -> list[Event]:
    out = []
    for entry_id, fields in record["events"]:
        event = dict(fields)
        event["_id_ms"] = str(int(str(entry_id).split("-")[0]))
        out.append(event)
    return out


def _at(event: Event | None) -> float | None:
    return float(event["at"]) if event is not None else None


def _first(
    events: Iterable[Event], kind: str, service: str | None = None, after: float | None = None
) -> Event | None:
    for e in events:
        if e.get("event") != kind:
            continue
        if service is not None and service not in e.get("service", "").split(","):
            continue
        if after is not None and float(e["at"]) < after:
            continue
        return e
    return None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def builds(events: Iterable[Event], service: str) -> int:
    return sum(1 for e in events if e.get("event") == "build-started" and e["service"] == service)


def served(samples: Sequence[Sequence[Any]], content: str) -> tuple[float | None, float | None]:
    """(send time of the first answer with `content`, send time from which every answer is
    `content`); None when it never was."""
    first = next((float(s[0]) for s in samples if s[1] == 200 and s[2] == content), None)
    if first is None:
        return None, None
    last_other = max(
        (float(s[0]) for s in samples if not (s[1] == 200 and s[2] == content)), default=None
    )
    alone = next(
        (float(s[0]) for s in samples if last_other is None or float(s[0]) > last_other), None
    )
    return first, alone


def push_figures(record: Json) -> Json:
    """Every figure of one push, in seconds (None where the event or answer is missing)."""
    events = _events(record)
    sha = str(record["sha"])
    hook = record.get("hook_sent")
    origin = float(hook if hook is not None else record["pushed"])
    updated = next(
        (e for e in events if e.get("event") == "git-updated" and e.get("commit") == sha), None
    )
    # the first build of web since the push: nothing else changes the workspace. Its reason
    # should name the commit; when the file watcher sees the fast-forward's write before the
    # git thread hands the move over, the build starts as a plain edit ("1 files changed")
    started = _first(events, "build-started", SERVICE)
    t_started = _at(started)
    built = _first(events, "built", SERVICE, t_started) if started else None
    deployed = _first(events, "deployed", SERVICE, _at(built)) if built else None
    finished = _first(events, "job-finished", SERVICE, t_started) if started else None
    samples = record["samples"]
    first, alone = served(samples, str(record["content"]))
    failed = [s for s in samples if s[1] != 200]
    out: Json = {
        "content": record["content"],
        "sha": sha,
        "push_seconds": float(record["pushed"]) - float(record["push_started"]),
        "hook_to_answer": _diff(record.get("hook_answered"), hook),
        "hook_status": record.get("hook_status"),
        "to_git_updated": _diff(_at(updated), origin),
        "git_updated_seconds": float(updated["seconds"]) if updated else None,
        "git_updated_redis": (
            _diff(int(updated["_id_ms"]) / 1000, origin) if updated is not None else None
        ),
        "to_build_started": _diff(t_started, origin),
        "build_started_before_git_updated": (
            t_started is not None and updated is not None and t_started < float(updated["at"])
        ),
        "build": _diff(_at(built), t_started),
        "rollout": _diff(_at(deployed), _at(built)),
        "build_started_to_live": _diff(first, t_started),
        "to_live": _diff(first, origin),
        "push_to_live": _diff(first, float(record["pushed"])),
        "push_to_git_updated": _diff(_at(updated), float(record["pushed"])),
        "to_new_alone": _diff(alone, origin),
        "to_finished": _diff(_at(finished), origin),
        "job_result": finished.get("result") if finished else None,
        "requests": len(samples),
        "failed": len(failed),
        "failures": [list(s) for s in failed[:20]],
        "builds": {SERVICE: builds(events, SERVICE), OTHER: builds(events, OTHER)},
        "build_reason": started.get("reason") if started else None,
        "reason_names_commit": started is not None and sha[:12] in started.get("reason", ""),
        "version_commit": record.get("version_commit"),
        "version_names_commit": record.get("version_commit") == sha,
    }
    return out


# the figures whose median a phase reports
TIMES = (
    "hook_to_answer",
    "to_git_updated",
    "git_updated_seconds",
    "git_updated_redis",
    "to_build_started",
    "build",
    "rollout",
    "build_started_to_live",
    "to_live",
    "push_to_live",
    "push_to_git_updated",
    "to_new_alone",
    "to_finished",
    "push_seconds",
)


def summarise(pushes: Sequence[Json]) -> Json:
    """Medians over a phase's pushes, the failed requests and the builds per service."""
    out: Json = {}
    for name in TIMES:
        values = [float(p[name]) for p in pushes if p.get(name) is not None]
        out[name] = {"median": median(values) if values else None, "values": values}
    out["failed"] = sum(int(p["failed"]) for p in pushes)
    out["failed_per_push"] = [int(p["failed"]) for p in pushes]
    out["requests"] = sum(int(p["requests"]) for p in pushes)
    out["builds"] = {svc: [int(p["builds"][svc]) for p in pushes] for svc in (SERVICE, OTHER)}
    out["pushes"] = len(pushes)
    out["missing"] = sum(1 for p in pushes if p.get("to_live") is None)
    out["job_results"] = [p.get("job_result") for p in pushes]
    out["build_started_before_git_updated"] = sum(
        1 for p in pushes if p.get("build_started_before_git_updated")
    )
    out["reason_without_commit"] = sum(1 for p in pushes if not p.get("reason_names_commit"))
    out["version_without_commit"] = sum(1 for p in pushes if not p.get("version_names_commit"))
    return out


def targets(webhook: Json, poll: Json | None, other_builds: int) -> Json:
    """`other_builds`: build-started events of `api` over both phases after start-up."""
    share = webhook["to_build_started"]["median"]
    failed = int(webhook["failed"]) + (int(poll["failed"]) if poll else 0)
    one_build = all(b == 1 for b in webhook["builds"][SERVICE]) and (
        poll is None or all(b == 1 for b in poll["builds"][SERVICE])
    )
    return {
        "sidecar_share": {
            "median_s": share,
            "target_s": SHARE_TARGET_S,
            "ok": share is not None and share < SHARE_TARGET_S,
        },
        "failed_requests": {"count": failed, "target": 0, "ok": failed == 0},
        "other_not_rebuilt": {"builds": other_builds, "ok": other_builds == 0},
        "one_build_per_push": {"ok": one_build},
    }
