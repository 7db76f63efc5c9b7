"""The sync benchmark's printed report: one table (metric | sidecar | compose watch | ratio |
target), the targets with PASS/MISS, and notes on where the time went."""

from __future__ import annotations

from bench.common import Json, fmt, ratio, table, verdict
from bench.sync.analyse import Target, after_checkout, never, targets
from bench.sync.tools import SIDECAR, WATCH

Row = list[str]


def report(sc: Json, cw: Json, rate: float) -> tuple[str, list[Target]]:
    found = targets(sc, cw)
    by_name = {t.name: t for t in found}
    rows: list[Row] = []

    def section(title: str) -> None:
        rows.append([title, "", "", "", ""])

    def row(
        label: str,
        a: float | int | str | None,
        b: float | int | str | None,
        target: str = "",
        goal: str = "",
        with_ratio: bool = True,
    ) -> None:
        r = ratio(a, b) if with_ratio and not isinstance(a, str) and not isinstance(b, str) else ""
        mark = f"{goal} {verdict(by_name[target].ok)}" if target in by_name else ""
        rows.append([f"  {label}", fmt(a), fmt(b), r, mark])

    if "edits" in sc and "edits" in cw:
        e, w = sc["edits"], cw["edits"]
        section(f"1. sync: edits of www/index.html, {rate:g} req/s on the published port")
        row(
            f"edit-to-live median (s, {e['edits']} edits)",
            e["median"],
            w["median"],
            "sync_edit_to_live_le_0.3x",
            "<= 0.30x",
        )
        row(
            "edit-to-live min / max (s)",
            f"{fmt(e['min'])} / {fmt(e['max'])}",
            f"{fmt(w['min'])} / {fmt(w['max'])}",
        )
        row("edits not live within 60 s", e["timeouts"], w["timeouts"], with_ratio=False)
        row(
            "failed requests per edit",
            e["failed_per_edit"],
            w["failed_per_edit"],
            "sync_zero_failed_requests",
            "0",
        )
        row(
            "containers created per edit",
            e["creates_per_edit"],
            w["creates_per_edit"],
            "sync_zero_containers_created",
            "0",
        )
        row("syncs per edit", e["syncs_per_edit"], w["syncs_per_edit"], with_ratio=False)
        row("builds per edit", e["builds_per_edit"], w["builds_per_edit"], with_ratio=False)
    if "touch" in sc and "touch" in cw:
        t, u = sc["touch"], cw["touch"]
        section(f"2. touch (os.utime) of every path under www/ ({t['paths_touched']} paths)")
        row("syncs", t["syncs"], u["syncs"], "touch_zero_syncs", "0", with_ratio=False)
        row(
            "builds / containers created",
            f"{t['builds']} / {t['creates']}",
            f"{u['builds']} / {u['creates']}",
        )
    if "delete" in sc and "delete" in cw:
        d, x = sc["delete"], cw["delete"]
        section("3. delete www/gone.html (created and synced before)")
        row(
            "until GET answers 404 (s)",
            _maybe(d["seconds"], d["wait"]),
            _maybe(x["seconds"], x["wait"]),
            "delete_propagated",
            "removed",
        )
        row(
            "fallbacks to a rebuild / failed batches",
            f"{d['counters']['fallbacks']} / {d['counters']['failures']}",
            f"{x['counters']['fallbacks']} / {x['counters']['failures']}",
        )
        row("containers created", d["creates"], x["creates"], with_ratio=False)
    if "bulk" in sc and "bulk" in cw:
        b, c = sc["bulk"], cw["bulk"]
        section(f"4. git checkout: {b['files']} files changed or added under www/")
        row(
            "until the last file is served, from the end of the checkout (s)",
            _maybe(after_checkout(b), b["wait"]),
            _maybe(after_checkout(c), c["wait"]),
            "bulk_live_within_2s",
            "<= 2 s",
        )
        row(
            "  the same from the start of the checkout (s)",
            _maybe(b["live_s"], b["wait"]),
            _maybe(c["live_s"], c["wait"]),
        )
        row(
            f"files missing after (GET all {b['files']})",
            b["missing_after"],
            c["missing_after"],
            "bulk_zero_missing",
            "0",
            with_ratio=False,
        )
        row(
            "sync batches",
            b["counters"]["batches"],
            c["counters"]["batches"],
            "bulk_one_batch",
            "1",
            with_ratio=False,
        )
        row(
            "files in the batches (as the tool counts them)",
            b["counters"]["files"],
            c["counters"]["files"],
            with_ratio=False,
        )
        row("containers created", b["creates"], c["creates"], with_ratio=False)
        row("the checkout itself (s)", b["checkout_s"], c["checkout_s"], with_ratio=False)
    if "restart" in sc and "restart" in cw:
        r, s = sc["restart"], cw["restart"]
        section(f"5. sync+restart, 2 served replicas through Traefik, {rate:g} req/s")
        row(
            f"failed requests ({r['redeploys']} edits)",
            r["failed_in_windows"],
            s["failed_in_windows"],
            "restart_zero_failed_requests",
            "0",
        )
        row(
            "failed requests per edit, max",
            max(r["failed_per_redeploy"]),
            max(s["failed_per_redeploy"]),
        )
        row(
            "failed requests outside the edit windows",
            r["failed_outside_windows"],
            s["failed_outside_windows"],
            with_ratio=False,
        )
        row("edit-to-live median (s)", r["edit_to_live"]["median"], s["edit_to_live"]["median"])
        row("write -> finished median (s)", r["finished"]["median"], s["finished"]["median"])
        row(
            "edits not ok (timeout, fallback...)",
            r["redeploys_not_ok"],
            s["redeploys_not_ok"],
            with_ratio=False,
        )
        row(
            "syncs / restarts (as the tool reports them)",
            f"{r['counters']['syncs']} / {r['counters']['restarts']}",
            f"{s['counters']['syncs']} / {s['counters']['restarts']}",
        )
        row(
            "running replicas after each edit",
            _join(r["replicas_after"]),
            _join(s["replicas_after"]),
        )
    if "rebuild" in sc and "rebuild" in cw:
        e, w = sc["rebuild"], cw["rebuild"]
        section(f"6. rebuild, web alone on its network, {rate:g} req/s on the published port")
        row(
            f"edit-to-live median (s, {e['edits']} edits)",
            e["median"],
            w["median"],
            "rebuild_edit_to_live_le_0.6x",
            "<= 0.60x",
        )
        row(
            "edit-to-new-container-start median (s)",
            e["container_start"]["median"],
            w["container_start"]["median"],
        )
        row("failed requests per edit", e["failed_per_edit"], w["failed_per_edit"])
        row(
            "containers created per edit",
            e["creates_per_edit"],
            w["creates_per_edit"],
            with_ratio=False,
        )

    lines = [
        table(["metric", SIDECAR, WATCH, "ratio sidecar/watch", "target (sidecar)"], rows),
        "",
        "targets (sidecar):",
        *(f"  {t.text} -> {verdict(t.ok)}" for t in found),
        *notes(sc, cw),
    ]
    return "\n".join(lines), found


def _maybe(seconds: float | None, within: float) -> float | str:
    return seconds if seconds is not None else never(None, within)


def _join(values: list[int]) -> str:
    return " ".join(str(v) for v in values)


def _phases(label: str, phases: dict[str, float], keys: tuple[str, ...]) -> str:
    parts = ", ".join(f"{k} {fmt(phases[k])}" for k in keys if k in phases)
    return f"  - {label}: {parts or '(no such events)'}"


def notes(sc: Json, cw: Json) -> list[str]:
    out = ["", "notes:"]
    if "edits" in sc:
        out.append(
            _phases(
                "sidecar sync edits, median (s; from its events stream)",
                sc["edits"]["phases_median"],
                ("write_to_sync_started", "sync", "write_to_synced"),
            )
        )
    if "rebuild" in sc:
        e, w = sc["rebuild"], cw.get("rebuild", {})
        out.append(
            _phases(
                "sidecar rebuild edits, median (s; from its events stream; build and deploy "
                "are one `up --build`, each event carries its whole time)",
                e["phases_median"],
                ("write_to_build_started", "build", "deploy"),
            )
        )
        if w:
            out.append(
                f"  - rebuild: live minus new-container-start (median): sidecar "
                f"{fmt(e['median'] - e['container_start']['median'])} s, compose watch "
                f"{fmt(w['median'] - w['container_start']['median'])} s (bench/README.md, "
                "'Caveat': the neighbour-cache delay of a recreate probed under load)"
            )
    for key, title in (("delete", "delete"), ("bulk", "branch switch")):
        if key in sc:
            out.append(
                _phases(
                    f"sidecar {title} (s; from its events stream)",
                    sc[key].get("phases", {}),
                    ("write_to_sync_started", "sync", "write_to_synced", "sync_files"),
                )
            )
    for key in ("edits", "rebuild"):
        for label, res in ((SIDECAR, sc), (WATCH, cw)):
            if key in res and res[key]["failed_by_kind"]:
                out.append(
                    f"  - {label}, {key}: failed requests by kind {res[key]['failed_by_kind']}"
                )
    for label, res in ((SIDECAR, sc), (WATCH, cw)):
        for phase in ("edits", "touch", "delete", "bulk", "restart", "rebuild"):
            messages = (res.get(phase) or {}).get("counters", {}).get("messages") or []
            for m in messages[:3]:
                out.append(f"  - {label}, {phase}: {m[:300]}")
            if len(messages) > 3:
                out.append(f"  - {label}, {phase}: ... {len(messages) - 3} more")
    return out
