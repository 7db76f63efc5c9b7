"""Prints the figures: every push of each phase, the medians side by side with the ratio
webhook/poll, and the targets."""

from __future__ import annotations

from collections.abc import Callable

from bench.common import Json, fmt, ratio, table, verdict
from bench.git.analyse import OTHER, SERVICE


def _s(value: object) -> str:
    return fmt(float(value), " s") if isinstance(value, int | float) else "-"


def _ms(value: object) -> str:
    return f"{float(value) * 1000:.0f} ms" if isinstance(value, int | float) else "-"


def _yn(flag: object) -> str:
    return "yes" if flag else "NO"


def pushes_table(label: str, pushes: list[Json]) -> str:
    origin = "hook" if label == "webhook" else "push"
    headers = [
        label,
        "hook->202",
        f"{origin}->git-updated (its seconds)",
        f"{origin}->build-started",
        "build",
        "built->deployed",
        "build-started->live",
        f"{origin}->live",
        "failed",
        f"builds {SERVICE}/{OTHER}",
        "commit in reason/version",
    ]
    rows = [
        [
            p["content"],
            _ms(p["hook_to_answer"]),
            f"{_ms(p['to_git_updated'])} ({_ms(p['git_updated_seconds'])})",
            _ms(p["to_build_started"]),
            _s(p["build"]),
            _s(p["rollout"]),
            _s(p["build_started_to_live"]),
            _s(p["to_live"]),
            f"{p['failed']}/{p['requests']}",
            f"{p['builds'][SERVICE]}/{p['builds'][OTHER]}",
            f"{_yn(p['reason_names_commit'])}/{_yn(p['version_names_commit'])}",
        ]
        for p in pushes
    ]
    return table(headers, rows)


def _m(summary: Json | None, name: str) -> float | None:
    if summary is None:
        return None
    value = summary[name]["median"]
    return float(value) if value is not None else None


def report(result: Json) -> None:
    hook: Json = result["webhook"]["summary"]
    poll: Json | None = result.get("poll", {}).get("summary")
    poll_s = result.get("poll_s")
    for mode in ("webhook", "poll"):
        if mode in result:
            print(f"\n{mode}: every push")
            print(pushes_table(mode, result[mode]["pushes"]))
    n = hook["pushes"]

    def row(label: str, key: str, fmt: Callable[[float | None], str], compare: bool) -> list[str]:
        a, b = _m(hook, key), _m(poll, key)
        return [label, fmt(a), fmt(b), ratio(a, b) if compare else ""]

    rows = [
        ["hook sent -> HTTP 202", _ms(_m(hook, "hook_to_answer")), "-", ""],
        row("hook / push -> git-updated", "to_git_updated", _ms, True),
        row("  git-updated's own seconds (fetch + move)", "git_updated_seconds", _ms, False),
        row("hook / push -> build-started (sidecar's share)", "to_build_started", _ms, True),
        row("build-started -> built", "build", _s, False),
        row("built -> deployed (rollout)", "rollout", _s, False),
        row("build-started -> vN first served", "build_started_to_live", _s, False),
        row("hook / push -> vN first served", "to_live", _s, True),
        row("push done -> vN first served", "push_to_live", _s, True),
        row("hook / push -> vN served alone", "to_new_alone", _s, False),
        [
            "failed requests (all pushes)",
            f"{hook['failed']} of {hook['requests']}",
            f"{poll['failed']} of {poll['requests']}" if poll else "-",
            "",
        ],
        [
            f"{OTHER} rebuilt",
            str(sum(hook["builds"][OTHER])),
            str(sum(poll["builds"][OTHER])) if poll else "-",
            "",
        ],
    ]
    poll_label = f"poll ({poll_s:g} s)" if poll_s else "poll"
    print(f"\nmedians over {n} pushes (webhook: from the hook; poll: from the push)")
    print(table(["", "webhook", poll_label, "webhook/poll"], rows))
    t = result["targets"]
    share = t["sidecar_share"]
    print("\ntargets:")
    print(
        f"  hook -> build-started median {_ms(share['median_s'])} < "
        f"{share['target_s'] * 1000:.0f} ms: {verdict(share['ok'])}"
    )
    failed = t["failed_requests"]
    print(f"  failed requests during the deploys: {failed['count']}: {verdict(failed['ok'])}")
    print(
        f"  {OTHER} not rebuilt ({t['other_not_rebuilt']['builds']} builds): "
        f"{verdict(t['other_not_rebuilt']['ok'])}; exactly one {SERVICE} build per push: "
        f"{verdict(t['one_build_per_push']['ok'])}"
    )
    for key, what in (
        ("build_started_before_git_updated", "build-started came before git-updated"),
        ("reason_without_commit", "the build's reason did not name the commit"),
        ("version_without_commit", "the deployed version did not name the commit"),
    ):
        count = hook[key] + (poll[key] if poll else 0)
        total = hook["pushes"] + (poll["pushes"] if poll else 0)
        if count:
            print(f"  note: {what} in {count} of {total} pushes")
