"""The zero-downtime benchmark's printed report and target."""

from __future__ import annotations

from bench.common import Json, fmt, ratio, table, verdict
from bench.zero_downtime.record import REPLICAS, SIDECAR, WATCH


def tool_table(label: str, res: Json) -> str:
    e = res["edit_to_live"]
    rows = [
        ["redeploys (not ok)", f"{res['redeploys']} ({res['redeploys_not_ok']})"],
        [
            "requests sent (in redeploy windows)",
            f"{res['requests_sent']} ({res['requests_in_windows']})",
        ],
        ["achieved rate (req/s)", fmt(res["achieved_rate"])],
        ["failed requests in redeploy windows", str(res["failed_in_windows"])],
        ["  per redeploy", " ".join(str(n) for n in res["failed_per_redeploy"])],
        ["  by kind", str(res["failed_by_kind"] or "-")],
        ["failed requests outside the windows", str(res["failed_outside_windows"])],
        ["edit-to-live median (s)", fmt(e["median"])],
        ["edit-to-live min / max (s)", f"{fmt(e['min'])} / {fmt(e['max'])}"],
        ["redeploys never live in their window", str(e["not_live"])],
        ["first new-content answer median (s)", fmt(res["first_new_median"])],
        [
            "write -> finished median / max (s)",
            f"{fmt(res['finished']['median'])} / {fmt(res['finished']['max'])}",
        ],
        ["running replicas after each redeploy", " ".join(str(n) for n in res["replicas_after"])],
    ]
    return f"{label}:\n" + table(["metric", "value"], rows)


def report(sc: Json, cw: Json) -> tuple[str, Json]:
    def row(name: str, a: float | int, b: float | int, with_ratio: bool = True) -> list[str]:
        return [name, fmt(a), fmt(b), ratio(a, b) if with_ratio else ""]

    rows = [
        row("redeploys", sc["redeploys"], cw["redeploys"], False),
        row("requests sent", sc["requests_sent"], cw["requests_sent"], False),
        row(
            "failed requests (all redeploy windows)",
            sc["failed_in_windows"],
            cw["failed_in_windows"],
        ),
        row(
            "failed requests per redeploy, max",
            max(sc["failed_per_redeploy"]),
            max(cw["failed_per_redeploy"]),
        ),
        row(
            "failed requests outside the windows",
            sc["failed_outside_windows"],
            cw["failed_outside_windows"],
            False,
        ),
        row("edit-to-live median (s)", sc["edit_to_live"]["median"], cw["edit_to_live"]["median"]),
        row("edit-to-live max (s)", sc["edit_to_live"]["max"], cw["edit_to_live"]["max"]),
        row("write -> finished median (s)", sc["finished"]["median"], cw["finished"]["median"]),
    ]
    target_ok = (
        sc["failed_in_windows"] == 0
        and sc["failed_outside_windows"] == 0
        and sc["redeploys"] >= 10
        and sc["redeploys_not_ok"] == 0
    )
    targets = {"sidecar_zero_failed_requests_over_10_redeploys": target_ok}
    lines = [
        tool_table(SIDECAR, sc),
        "",
        tool_table(WATCH, cw),
        "",
        "comparison:",
        table(["metric", SIDECAR, WATCH, "ratio sidecar/watch"], rows),
        "",
        "target (sidecar):",
        f"  0 failed requests over {sc['redeploys']} redeploys (>= 10): got "
        f"{sc['failed_in_windows'] + sc['failed_outside_windows']}, compose watch "
        f"{cw['failed_in_windows'] + cw['failed_outside_windows']} in the same run -> "
        f"{verdict(target_ok)}",
    ]
    for label, res in ((SIDECAR, sc), (WATCH, cw)):
        if any(n != REPLICAS for n in res["replicas_after"]):
            lines.append(
                f"  note: {label} did not keep {REPLICAS} replicas running "
                f"(after each redeploy: {res['replicas_after']})"
            )
    return "\n".join(lines), targets
