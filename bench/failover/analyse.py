"""Figures of recorded failover trials. Pure: a trial is plain, JSON-serialisable data (see
`record.record_trial`), so the figures can be recomputed from a saved run and the analysis
is unit-tested on a recorded trial (tests/bench/)."""

from __future__ import annotations

from typing import Any

from bench.common import median

Json = dict[str, Any]
PATH_A = "a"
PATH_B = "b"
PATHS = (PATH_A, PATH_B)
PROJECT_LABEL = "com.docker.compose.project"
THROTTLE = 2.0  # Traefik's providersThrottleDuration (default), the same for both proxies
ENDS = ("kill", "die", "stop", "pause")


def first_event(events: list[Json]) -> Json | None:
    ends = [e for e in events if e["action"] in ENDS]
    return min(ends, key=lambda e: float(e["at"])) if ends else None


def provider_triggers(events: list[Json], since: float, until: float) -> list[Json]:
    """Events of any container that make Traefik's Docker provider send a message."""
    return [
        e
        for e in events
        if since <= e["at"] < until
        and (e["action"] in ("start", "die") or str(e["action"]).startswith("health_status"))
    ]


def throttle_hold(triggers: list[float], at: float, period: float = THROTTLE) -> float:
    """How long Traefik holds back a provider message sent at `at`, given the provider's
    earlier messages at `triggers`. Traefik v3 (`maybeThrottledProvide`) publishes a message,
    sleeps `period`, then publishes the latest one that arrived meanwhile, if any: changed
    or not, every message takes a slot."""
    free_at = float("-inf")  # when the next message may go out
    pending = False
    for t in sorted(x for x in triggers if x < at):
        if pending and free_at <= t:  # the held one went out at free_at
            free_at, pending = free_at + period, False
        if t >= free_at:
            free_at = t + period
        else:
            pending = True
    if pending and free_at <= at:
        free_at += period
    return max(0.0, free_at - at)


def path_figures(rec: Json, key: str, t_ev: float, replaced_at: float | None) -> Json:
    t_action, t_end = float(rec["t_action"]), float(rec["t_end"])
    victim_url, host = rec["victim_url"], str(rec["victim"])[:12]
    requests = [r for r in rec["requests"][key] if r[0] >= t_action - 2.0]
    window = [r for r in requests if t_action <= r[0] <= t_end]
    served = [r[1] for r in requests if r[0] <= t_end and r[3] == host]
    failed = [r for r in window if r[2] != 200]
    kinds: dict[str, int] = {}
    for r in failed:
        kind = str(r[2]) if r[2] else str(r[3]).split(":", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    # Traefik's own record of where each request went (its access log). The replacement
    # often gets the victim's address back: requests to that address from the replacement's
    # start on are the replacement's.
    limit = min(replaced_at if replaced_at is not None else t_end, t_end)
    routed: list[float] = []
    after = False
    by_backend: dict[str, int] = {}
    for start, _, url, status in rec["access"][key]:
        if url == victim_url and t_action - 2.0 <= start < limit:
            routed.append(start)
        if url == victim_url and replaced_at is not None and limit <= start < limit + 0.2:
            after = True
        if t_action <= start <= t_end and status != 200:
            if not url:
                who = "none"
            elif url == victim_url:
                who = "victim" if start < limit else "replacement (same address)"
            else:
                who = "other"
            by_backend[who] = by_backend.get(who, 0) + 1
    # requests to the address went on into the replacement's start
    handed_over = after and bool(routed) and max(routed) >= limit - 0.2
    return {
        "requests": len(window),
        "failed": len(failed),
        "failed_kinds": kinds,
        "failed_by_backend_access_log": by_backend,
        "last_routed_to_victim_s": max(routed) - t_ev if routed else None,
        # True: Traefik never stopped sending to the victim's address before the replacement
        # took that address over; last_routed_to_victim_s is then a lower bound
        "routed_until_replacement_took_address": handed_over,
        "routed_to_victim_after_event": sum(1 for r in routed if r >= t_ev),
        "last_served_by_victim_s": max(served) - t_ev if served else None,
        "first_failure_s": min(r[0] for r in failed) - t_ev if failed else None,
        "last_failure_s": max(r[1] for r in failed) - t_ev if failed else None,
    }


def redis_figures(rec: Json, t_ev: float, replaced_at: float | None) -> Json:
    """When the victim's URL left the rotation list: the first keyspace notification after
    the action whose list, read right after it, no longer holds the URL. Also whether it came
    back before its replacement started (the replacement may get the same address)."""
    t_action, url = float(rec["t_action"]), rec["victim_url"]
    before = [n for n in rec["notices"] if n["at"] < t_action]
    notices = [n for n in rec["notices"] if n["at"] >= t_action]
    removed = next((n for n in notices if url not in n["urls"]), None)
    rejoined = back = None
    if removed is not None:
        full = int(rec["replicas"])
        rejoined = next(
            (n for n in notices if n["at"] >= removed["at"] and len(n["urls"]) == full), None
        )
        limit = replaced_at if replaced_at is not None else float("inf")
        back = next(
            (n for n in notices if removed["at"] < n["at"] < limit and url in n["urls"]), None
        )
    return {
        "victim_back_in_rotation_s": back["at"] - t_ev if back else None,
        "removed_s": removed["at"] - t_ev if removed else None,
        "removed_op": removed["op"] if removed else None,
        "listed_before": bool(before) and url in before[-1]["urls"],
        "list_after_removal": list(removed["urls"]) if removed else None,
        "rotation_full_again_s": rejoined["at"] - t_ev if rejoined else None,
        "timeline": [
            (round(n["at"] - t_ev, 4), n["op"], len(n["urls"]), url in n["urls"]) for n in notices
        ],
    }


def throttle_exposure(rec: Json, removed_at: float | None, die: Json | None) -> Json:
    """Traefik's provider throttle, modelled from what each provider reacts to:
    (a) the Redis provider sends a message for every keyspace notification under its root,
    and every sidecar publish (one MULTI/EXEC, also when only the instance table changed)
    rewrites the Traefik keys: several notifications, so one message at once and one more
    2 s later; (b) the Docker provider sends one for every start, die and health_status of
    any container of the host. Hold-back of the message that removes the victim. The
    recording keeps what came `lookback_s` before the action (the proxy's start counts as a
    message when it falls in it): older messages cannot hold anything back any more, since a
    trial starts only once both throttles are free."""
    out: Json = {}
    lookback = float(rec["t_action"]) - float(rec["lookback_s"])
    if removed_at is not None:
        pa = float(rec["proxy_started"][PATH_A])
        triggers = [pa] if pa >= lookback else []
        triggers += [n["at"] for n in rec["notices"] if pa <= n["at"] < removed_at]
        out["a_hold_s"] = throttle_hold(triggers, removed_at)
        out["a_messages_in_4s_before"] = sum(1 for t in triggers if t >= removed_at - 4.0)
    if die is not None:
        pb = float(rec["proxy_started"][PATH_B])
        events = [
            e
            for e in provider_triggers(rec["docker_events"], pb, die["at"])
            if not (e["container"] == rec["victim"] and e["action"] == "die")
        ]
        triggers = ([pb] if pb >= lookback else []) + [e["at"] for e in events]
        out["b_hold_s"] = throttle_hold(triggers, die["at"])
        recent = [e for e in events if e["at"] >= die["at"] - 4.0]
        out["b_messages_in_4s_before"] = len(recent)
        out["b_messages_of_other_projects_in_4s_before"] = sum(
            1 for e in recent if e["attrs"].get(PROJECT_LABEL) != rec["project"]
        )
    return out


def disturbances(rec: Json) -> list[str]:
    """Something else on the host can end instances too (another job restarting dockerd...):
    such a trial measures that, not the failover, and is not counted."""
    out = []
    if rec["docker_gap"]:
        out.append("the docker daemon went away during the trial (restarted?)")
    others = set(rec["ids"]) - {rec["victim"]}
    t_action, t_end = float(rec["t_action"]), float(rec["t_end"])
    hit = sorted(
        {
            str(e["container"])[:12]
            for e in rec["docker_events"]
            if e["container"] in others
            and t_action <= e["at"] <= t_end
            and e["action"] in (*ENDS, "destroy")
        }
    )
    if hit:
        out.append(f"instances other than the victim ended: {', '.join(hit)}")
    return out


def analyse_trial(rec: Json) -> Json:
    """The figures of one recorded trial, times relative to the first docker event of the
    action (`kill`, with signal 9 or 15)."""
    t_action, t_end = float(rec["t_action"]), float(rec["t_end"])
    victim = rec["victim"]
    evs = [e for e in rec["docker_events"] if e["container"] == victim and e["at"] >= t_action - 1]
    first = first_event(evs)
    t_ev = float(first["at"]) if first else t_action
    start = next(
        (
            e
            for e in rec["docker_events"]
            if e["action"] == "start"
            and e["at"] >= t_action
            and e["container"] not in rec["ids"]
            and e["attrs"].get(PROJECT_LABEL) == rec["project"]
        ),
        None,
    )
    replaced_at = float(start["at"]) if start else None
    die = next((e for e in evs if e["action"] == "die"), None)
    redis = redis_figures(rec, t_ev, replaced_at)
    removed = redis["removed_s"]
    exposure = throttle_exposure(rec, t_ev + removed if removed is not None else None, die)
    disturbed = disturbances(rec)
    return {
        "trial": rec["trial"],
        "action": rec["action"],
        "retry_attempts": rec["retry_attempts"],
        "victim": victim[:12],
        "victim_name": rec["victim_name"],
        "victim_url": rec["victim_url"],
        "cli_ok": rec["cli_ok"],
        "cli_seconds": rec["t_cli"] - t_action,
        "event_at": t_ev,
        "action_to_event_s": t_ev - t_action,
        "first_event": (
            f"{first['action']} signal={first['attrs'].get('signal', '')}" if first else None
        ),
        "victim_events": [(e["action"], round(e["at"] - t_ev, 4)) for e in evs],
        "die_s": die["at"] - t_ev if die else None,
        "throttle_exposure": exposure,
        "replacement_start_s": replaced_at - t_ev if replaced_at else None,
        "replacement": start["container"][:12] if start else None,
        "replacement_url": rec["urls"].get(start["container"]) if start else None,
        "stable": rec["stable"],
        "disturbed": "; ".join(disturbed),
        "stable_after_s": t_end - t_ev,
        "unstable_reason": rec["unstable_reason"],
        "paths": {key: path_figures(rec, key, t_ev, replaced_at) for key in PATHS},
        "redis": redis,
        "sidecar_logged_lag_s": rec["sidecar_logged_lag_s"],
        # what the sidecar itself recorded meanwhile (its events stream)
        "sidecar_events": rec["sidecar_events"],
    }


# --- over the trials of one action ------------------------------------------------------
def values(trials: list[Json], path: str, metric: str) -> list[float]:
    return [
        float(t["paths"][path][metric])
        for t in trials
        if counted(t) and t["paths"][path][metric] is not None
    ]


def counted(t: Json) -> bool:
    return bool(t["stable"]) and not t["disturbed"]


def summary(trials: list[Json]) -> Json:
    done = [t for t in trials if counted(t)]
    out: Json = {
        "attempts": len(trials),
        "trials": len(done),
        "disturbed": sum(1 for t in trials if t["disturbed"]),
        "paths": {},
    }
    for path in PATHS:
        routed = values(trials, path, "last_routed_to_victim_s")
        served = values(trials, path, "last_served_by_victim_s")
        first = values(trials, path, "first_failure_s")
        out["paths"][path] = {
            "time_to_stop_traffic_median_s": median(routed),
            "time_to_stop_traffic_max_s": max(routed) if routed else None,
            "last_served_median_s": median(served),
            "last_served_max_s": max(served) if served else None,
            "first_failure_median_s": median(first),
            "failed_total": sum(t["paths"][path]["failed"] for t in done),
            "trials_with_failures": sum(1 for t in done if t["paths"][path]["failed"]),
            "requests_in_windows": sum(t["paths"][path]["requests"] for t in done),
            "trials_routed_until_replacement": sum(
                1 for t in done if t["paths"][path]["routed_until_replacement_took_address"]
            ),
        }
    removal = [float(t["redis"]["removed_s"]) for t in done if t["redis"]["removed_s"] is not None]
    out["redis_removal_s"] = removal
    out["redis_removal_median_s"] = median(removal)
    out["redis_removal_max_s"] = max(removal) if removal else None
    out["redis_removal_confirmed"] = sum(
        1 for t in done if t["redis"]["listed_before"] and t["redis"]["removed_s"] is not None
    )
    out["stable_after_median_s"] = median([float(t["stable_after_s"]) for t in done])
    out["victim_back_in_rotation"] = sum(
        1 for t in done if t["redis"]["victim_back_in_rotation_s"] is not None
    )
    out["replacement_start_median_s"] = median(
        [float(t["replacement_start_s"]) for t in done if t["replacement_start_s"] is not None]
    )
    # the proxy's own share: last request to the victim after what it reacts to
    lag_a = [
        float(t["paths"][PATH_A]["last_routed_to_victim_s"]) - float(t["redis"]["removed_s"])
        for t in done
        if t["paths"][PATH_A]["last_routed_to_victim_s"] is not None
        and t["redis"]["removed_s"] is not None
    ]
    lag_b = [
        float(t["paths"][PATH_B]["last_routed_to_victim_s"]) - float(t["die_s"])
        for t in done
        if t["paths"][PATH_B]["last_routed_to_victim_s"] is not None and t["die_s"] is not None
    ]
    out["paths"][PATH_A]["proxy_lag_median_s"] = median(lag_a)
    out["paths"][PATH_B]["proxy_lag_median_s"] = median(lag_b)
    out["paths"][PATH_A]["proxy_lag_max_s"] = max(lag_a) if lag_a else None
    out["paths"][PATH_B]["proxy_lag_max_s"] = max(lag_b) if lag_b else None
    exp = [t["throttle_exposure"] for t in done]
    for path in PATHS:
        holds = [float(e[f"{path}_hold_s"]) for e in exp if e.get(f"{path}_hold_s") is not None]
        out["paths"][path]["throttle_hold_median_s"] = median(holds)
        out["paths"][path]["throttle_hold_max_s"] = max(holds) if holds else None
        out["paths"][path]["trials_held_back"] = sum(1 for h in holds if h > 0)
    return out


def stream_figures(requests: list[list[Any]], skipped: int) -> Json:
    """One load stream over the whole run: [sent, done, status, body] per request."""
    lat = sorted(r[1] - r[0] for r in requests if r[2] == 200)
    sent = [r[0] for r in requests]
    span = max(sent, default=0.0) - min(sent, default=0.0)
    return {
        "requests": len(requests),
        "failed": sum(1 for r in requests if r[2] != 200),
        "rate_per_s": len(requests) / span if span else None,
        "latency_median_s": median(lat),
        "latency_p99_s": lat[int(len(lat) * 0.99)] if lat else None,
        "ticks_skipped_all_workers_busy": skipped,
    }
