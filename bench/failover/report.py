"""The failover benchmark's printed report and targets, from the analysed figures."""

from __future__ import annotations

from collections.abc import Callable

from bench.common import fmt, table, verdict
from bench.failover.analyse import PATH_A, PATH_B, Json

REDIS_TARGET_S = 0.100
MIN_TRIALS = 10
PATH_LABELS = {
    PATH_A: "(a) sidecar -> Redis -> Traefik",
    PATH_B: "(b) Traefik docker provider",
}


def mode_key(attempts: int) -> str:
    return f"retry_{attempts}"


def mode_label(attempts: int) -> str:
    return f"retry {attempts}" if attempts else "no retry"


def trial_line(t: Json) -> str:
    pa, pb = t["paths"][PATH_A], t["paths"][PATH_B]
    return (
        f"  {t['action']} {t['trial']}: {t['victim']} | redis removal "
        f"{fmt(t['redis']['removed_s'], ' s')} | last routed a "
        f"{fmt(pa['last_routed_to_victim_s'])} b {fmt(pb['last_routed_to_victim_s'])} s | "
        f"failed a {pa['failed']} b {pb['failed']} | stable after "
        f"{fmt(t['stable_after_s'], ' s')}{'' if t['stable'] else ' NOT STABLE'}"
    )


def _dash(_: Json) -> str:
    return "-"


# (row label, value of path a, value of path b) from one action's summary
Row = tuple[str, Callable[[Json], str], Callable[[Json], str]]


def _p(path: str, metric: str) -> Callable[[Json], str]:
    return lambda s: fmt(s["paths"][path][metric])


def _both(label: str, metric: str) -> Row:
    return (label, _p(PATH_A, metric), _p(PATH_B, metric))


ROWS: list[Row] = [
    _both("  time to stop traffic, median (s)", "time_to_stop_traffic_median_s"),
    _both("  time to stop traffic, max (s)", "time_to_stop_traffic_max_s"),
    _both("  routed to it until its address was reused [3]", "trials_routed_until_replacement"),
    _both("  last response served by victim, median (s)", "last_served_median_s"),
    _both("  first failed request, median (s)", "first_failure_median_s"),
    _both("  proxy lag after its trigger, median (s) [1]", "proxy_lag_median_s"),
    _both("  proxy lag after its trigger, max (s) [1]", "proxy_lag_max_s"),
    _both("  throttle hold-back (model), median (s) [2]", "throttle_hold_median_s"),
    _both("  throttle hold-back (model), max (s) [2]", "throttle_hold_max_s"),
    _both("  failed requests, total", "failed_total"),
    _both("  trials with failures", "trials_with_failures"),
    _both("  requests in the trial windows", "requests_in_windows"),
    ("  Redis removal latency, median (s)", lambda s: fmt(s["redis_removal_median_s"]), _dash),
    ("  Redis removal latency, max (s)", lambda s: fmt(s["redis_removal_max_s"]), _dash),
    (
        "  victim put back into the rotation (trials)",
        lambda s: fmt(s["victim_back_in_rotation"]),
        _dash,
    ),
    (
        "  replacement container started, median (s)",
        lambda s: fmt(s["replacement_start_median_s"]),
        lambda s: "(same container)",
    ),
]


def _table(results: dict[str, Json], modes: list[int]) -> str:
    headers = ["metric (times from the first docker event)"]
    for m in modes:
        headers += [f"(a) sidecar, {mode_label(m)}", f"(b) docker provider [{mode_label(m)} run]"]
    rows: list[list[str]] = []
    for action in ("kill", "stop"):
        summaries = [results.get(mode_key(m), {}).get(action, {}).get("summary") for m in modes]
        if not any(summaries):
            continue
        head = [f"docker {action}"]
        for s in summaries:
            n = f"{s['trials']} trials" if s else "-"
            n += f", {s['disturbed']} disturbed not counted" if s and s["disturbed"] else ""
            head += [n, ""]
        rows.append(head)
        for label, a, b in ROWS:
            row = [label]
            for s in summaries:
                row += [a(s), b(s)] if s else ["-", "-"]
            rows.append(row)
    return table(headers, rows)


def _targets(results: dict[str, Json], modes: list[int], trials: int) -> tuple[list[str], Json]:
    lines: list[str] = []
    targets: Json = {}
    for m in modes:
        for action, cmp in (("kill", "<="), ("stop", "<")):
            s = results.get(mode_key(m), {}).get(action, {}).get("summary")
            if s is None:
                continue
            tag = f"{action}, {mode_label(m)}"
            count = len(s["redis_removal_s"])
            ok = count >= MIN_TRIALS and s["redis_removal_median_s"] <= REDIS_TARGET_S
            targets[f"redis_removal_median_le_100ms_{action}_{mode_key(m)}"] = ok
            lines.append(
                f"  rotation entry removed from Redis within 100 ms ({tag}, median of {count}"
                f"{'' if count >= MIN_TRIALS else f', needs >= {MIN_TRIALS}'}): "
                f"{fmt(s['redis_removal_median_s'])} s -> {verdict(ok)}"
            )
            fa, fb = s["paths"][PATH_A]["failed_total"], s["paths"][PATH_B]["failed_total"]
            complete = s["trials"] >= trials
            ok = complete and (fa <= fb if cmp == "<=" else fa < fb)
            name = f"failed_a_{'le' if cmp == '<=' else 'lt'}_b_{action}_{mode_key(m)}"
            targets[name] = ok
            lines.append(f"  failed requests (a) {cmp} (b) ({tag}): {fa} vs {fb} -> {verdict(ok)}")
            if m >= 2:
                ok = s["trials"] >= max(trials, MIN_TRIALS) and fa == 0
                targets[f"zero_failed_{action}_{mode_key(m)}"] = ok
                lines.append(
                    f"  0 failed requests (a) over >= {MIN_TRIALS} trials ({tag}): {fa} in "
                    f"{s['trials']} trials, docker provider {fb} -> {verdict(ok)}"
                )
    return lines, targets


NOTES = [
    "",
    "notes:",
    "  - time to stop traffic: start of the last request Traefik sent to the victim (its",
    "    access log), answered or not; negative = before the event",
    "  - failed = non-200 or no answer within 1 s, from the action until the path is stable",
    "    again (replacement serving on both paths, 2 s without a failure)",
    "  - retry N: the sidecar publishes Traefik's retry middleware (x-sidecar retry.attempts",
    "    N, default 2): a request whose connection failed before it was sent goes to the next",
    "    server; path (b) has no retry in either run",
    "  - [1] last request to the victim minus what the proxy reacts to: (a) the Redis",
    "    removal, (b) the victim's `die` event (the Docker provider ignores `kill`)",
    "  - [2] Traefik publishes a provider's message, then waits 2 s before the next",
    "    (providersThrottleDuration), changed config or not; modelled from what each",
    "    provider reacts to: (a) every sidecar publish (several keyspace notifications),",
    "    (b) every start/die/health_status of any container of the host",
    "  - [3] the replacement usually gets the victim's address back; in these trials",
    "    requests to it went on until then, so the time to stop traffic is a lower bound",
]


def report(results: dict[str, Json], modes: list[int], trials: int) -> tuple[str, Json]:
    """The table (one pair of columns per retry setting), the targets, the notes."""
    lines, targets = _targets(results, modes, trials)
    return "\n".join([_table(results, modes), "", "targets:", *lines, *NOTES]), targets


def streams_lines(streams: dict[str, Json]) -> list[str]:
    out = []
    for path, info in streams.items():
        out.append(
            f"  - load {PATH_LABELS[path]}: {info['requests']} requests "
            f"({fmt(info['rate_per_s'])}/s), median latency {fmt(info['latency_median_s'])} s"
        )
    return out
