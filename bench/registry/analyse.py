"""The figures of one push, from its record (plain data, as `record.one_push` makes it), and the
phase summaries. Pure: nothing here talks to a process.

A push record:

- `content` (`vN`), `push_started`/`pushed` (unix times around the registry push: blobs,
  then the manifest by tag), `live_seen` (when the benchmark saw it served alone);
- `samples`: the load's requests through Traefik, `[sent, status, body, seconds]`;
- sidecar phases: `events`, the sidecar's events stream from just before the push,
  `[entry id, fields]` (every field a string, `at` the daemon's unix time with ms);
- by hand: `pull_done`/`up_done` (when `docker compose pull web` and then `up -d web`
  returned) and their exit codes, `docker_events`: `[time, action, container name]`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any

from bench.common import Json, alone_from, median
from bench.registry.record import SERVICE

Event = dict[str, str]
# the per-push figures summarised (median, min, max) for each phase
FIGURES = (
    "to_first_served",
    "to_live",
    "to_drift_checked",
    "to_pull_started",
    "pull",
    "pull_done_to_first_served",
    "rollout",
    "pull_cmd",
    "up_cmd",
    "up_done_to_first_served",
    "old_stopped_to_new_started",
)


def served(samples: Sequence[Sequence[Any]], content: str) -> tuple[float | None, float | None]:
    """(when the first answer with `content` came back, send time from which every request is
    answered with `content`); None when it never was. The first is an answer's time, not its
    request's: a request sent to an address that is being recreated may hang until the new
    container answers on the same address (by hand, compose reuses the old IP address)."""
    answers = [float(s[0]) + float(s[3]) for s in samples if s[1] == 200 and s[2] == content]
    first = min(answers, default=None)
    return (None, None) if first is None else (first, alone_from(samples, content))


def _first(events: Iterable[Event], kind: str, after: float | None = None) -> Event | None:
    for e in events:
        if e.get("event") == kind and (after is None or float(e["at"]) >= after):
            return e
    return None


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _sidecar(record: Json, pushed: float, first: float | None) -> Json:
    events = [dict(f) for _, f in record["events"]]
    web = [e for e in events if e.get("service") == SERVICE]
    checked = next(
        (
            e
            for e in events
            if e.get("event") == "drift-checked" and SERVICE in e.get("drifted", "").split(",")
        ),
        None,
    )
    started = _first(web, "pull-started")
    t_started = float(started["at"]) if started else None
    pulled = _first(web, "pulled", t_started) if started else None
    deployed = _first(web, "deployed", t_started) if started else None
    pull_s = float(pulled["seconds"]) if pulled else None
    pull_done = None if t_started is None or pull_s is None else t_started + pull_s
    return {
        "to_drift_checked": _diff(float(checked["at"]), pushed) if checked else None,
        "to_pull_started": _diff(t_started, pushed),
        "pull": pull_s,
        "pull_done_to_first_served": _diff(first, pull_done),
        "rollout": float(deployed["seconds"]) if deployed else None,
        "pulled_at_after_first_served": _diff(float(pulled["at"]), first) if pulled else None,
        "pulls": sum(1 for e in web if e.get("event") == "pull-started"),
        "pulls_changed": [e.get("changed") for e in web if e.get("event") == "pulled"],
        "failed_jobs": [e.get("event") for e in web if e.get("event", "").endswith("-failed")],
    }


def _by_hand(record: Json, pushed: float, first: float | None) -> Json:
    events = record.get("docker_events") or []
    stopped = next((float(t) for t, action, _ in events if action in ("kill", "stop")), None)
    new_start = next((float(t) for t, action, _ in events if action == "start"), None)
    return {
        "pull_cmd": _diff(record.get("pull_done"), pushed),
        "up_cmd": _diff(record.get("up_done"), record.get("pull_done")),
        "up_done_to_first_served": _diff(first, record.get("up_done")),
        "old_stopped_to_new_started": _diff(new_start, stopped),
        "commands_ok": record.get("pull_rc") == 0 and record.get("up_rc") == 0,
    }


def push_figures(record: Json) -> Json:
    """Every figure of one push, in seconds (None where the event or answer is missing)."""
    pushed = float(record["pushed"])
    samples = record["samples"]
    first, alone = served(samples, str(record["content"]))
    failed = [s for s in samples if s[1] != 200]
    out: Json = {
        "content": record["content"],
        "push_seconds": pushed - float(record["push_started"]),
        "to_first_served": _diff(first, pushed),
        "to_live": _diff(alone, pushed),
        "requests": len(samples),
        "failed": len(failed),
        "failed_by_status": dict(Counter(str(s[1]) for s in failed)),
        # a few of them: when (from the push), status (0: no HTTP answer), body
        "failed_sample": [[round(s[0] - pushed, 3), s[1], str(s[2])[:100]] for s in failed[:5]],
        "dockerd_restarted": bool(record.get("dockerd_restarted")),
    }
    if "events" in record:
        out |= _sidecar(record, pushed, first)
    else:
        out |= _by_hand(record, pushed, first)
    return out


def summarise(pushes: list[Json]) -> Json:
    """Median, min, max of each figure over the pushes (voided ones left out), and the
    failed requests in all."""
    valid = [p for p in pushes if not p["dockerd_restarted"]]
    out: Json = {
        "pushes": len(pushes),
        "voided": len(pushes) - len(valid),
        "failed": sum(int(p["failed"]) for p in valid),
        "failed_per_push": [int(p["failed"]) for p in valid],
        "requests": sum(int(p["requests"]) for p in valid),
        "failed_by_status": dict(
            sum((Counter(p["failed_by_status"]) for p in valid), Counter[str]())
        ),
    }
    for name in FIGURES:
        values = [float(p[name]) for p in valid if p.get(name) is not None]
        if values:
            out[name] = {"median": median(values), "min": min(values), "max": max(values)}
    return out


def drift_period(checked_at: Sequence[float]) -> Json:
    """The gaps between the daemon's drift checks (its `drift-checked` events)."""
    gaps = [b - a for a, b in pairwise(checked_at)]
    return {"checks": len(checked_at), "median_gap": median(gaps), "gaps": gaps}
