"""Figures of the sync benchmark from plain data: compose watch's output text, the sidecar's
events (dicts as `Sidecar.events` returns them) and the counters `record` takes before and
after each phase. Pure: nothing here talks to Docker, Redis or HTTP."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import Json

# compose watch, once per sync batch it starts (pkg/compose/watch.go), naming the service
WATCH_SYNCING = re.compile(r'Syncing service "([^"]+)" after (\d+) changes were detected')
# compose watch, when a batch could not be applied: its `rm -rf` in the container failed, a
# copy failed... (logged as a warning, the watch goes on)
WATCH_BATCH_ERROR = re.compile(r"Error handling changed files: [^\n\"]*")
REBUILDING = re.compile(r"Rebuilding service\(s\) \[([^\]]*)\]")
# compose watch, after each restart of a sync+restart rule
RESTARTED = re.compile(r"service\(s\) \[([^\]]*)\] restarted")

# The sidecar's events that end a `sync+restart` (or say why it did not happen).
RESTART_END = ("restarted", "sync-failed")


def watch_syncs(text: str, service: str) -> list[int]:
    """Changes per sync batch compose watch started for `service`, in order."""
    return [int(m.group(2)) for m in WATCH_SYNCING.finditer(text) if m.group(1) == service]


def _naming(pattern: re.Pattern[str], text: str, service: str) -> int:
    """Lines of compose watch matching `pattern` whose list of services (Go %q of a slice)
    names `service`."""
    return sum(1 for m in pattern.finditer(text) if service in re.findall(r'"([^"]+)"', m.group(1)))


def watch_errors(text: str) -> list[str]:
    """compose watch's warnings about batches it could not apply."""
    return [m.group(0).strip() for m in WATCH_BATCH_ERROR.finditer(text)]


def watch_counters(text: str, service: str) -> Json:
    """compose watch's counters, the same keys as `sidecar_counters`: syncs (= batches: it
    says one line per batch), the files of the batches, builds, restarts, errors."""
    syncs = watch_syncs(text, service)
    return {
        "syncs": len(syncs),
        "batches": len(syncs),
        "files": sum(syncs),
        "builds": _naming(REBUILDING, text, service),
        "restarts": _naming(RESTARTED, text, service),
        "fallbacks": 0,  # compose watch has no fallback: a failed batch is a warning
        "failures": len(watch_errors(text)),
        "messages": watch_errors(text),
    }


def _event_text(e: Mapping[str, str]) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "service", "at"))
    return f"{e.get('event')}: {fields}"


def sidecar_counters(events: Sequence[Mapping[str, str]]) -> Json:
    """The sidecar's counters from its events of one service: `synced` events (syncs),
    `sync-started` (batches), the files of the synced batches, `build-started`, `restarted`,
    fallbacks to a rebuild, `sync-failed`, and what the fallbacks and failures said."""

    def of(kind: str) -> list[Mapping[str, str]]:
        return [e for e in events if e.get("event") == kind]

    synced = of("synced")
    odd = [e for e in events if e.get("event") in ("sync-fallback", "sync-failed")]
    return {
        "syncs": len(synced),
        "batches": len(of("sync-started")),
        "files": sum(int(e.get("files") or 0) for e in synced),
        "builds": len(of("build-started")),
        "restarts": len(of("restarted")),
        "fallbacks": len(of("sync-fallback")),
        "failures": len(of("sync-failed")),
        "messages": [_event_text(e) for e in odd],
    }


def delta(before: Json, after: Json) -> Json:
    """What a phase added to the counters: numbers subtracted, message lists cut."""
    out: Json = {}
    for key, value in after.items():
        if isinstance(value, list):
            out[key] = value[len(before.get(key) or []) :]
        else:
            out[key] = value - before.get(key, 0)
    return out


def sync_phases(events: Sequence[Mapping[str, str]], since: float) -> dict[str, float]:
    """Where the time of the change written at unix time `since` went, from the sidecar's
    events: write -> sync-started, the sync's own `seconds`, write -> synced, its files and
    bytes (the first batch after the write)."""
    first: dict[str, Mapping[str, str]] = {}
    for e in events:
        if float(e.get("at", 0)) >= since:
            first.setdefault(e.get("event", ""), e)
    out: dict[str, float] = {}
    if "sync-started" in first:
        out["write_to_sync_started"] = float(first["sync-started"]["at"]) - since
    synced = first.get("synced")
    if synced is not None:
        out |= {
            "sync": float(synced.get("seconds") or "nan"),
            "write_to_synced": float(synced["at"]) - since,
            "sync_files": float(synced.get("files") or 0),
            "sync_bytes": float(synced.get("bytes") or 0),
        }
    return out


@dataclass(frozen=True)
class Finish:
    at: float
    result: str  # "ok", or what happened instead


def restart_finished(events: Sequence[Mapping[str, str]]) -> Finish | None:
    """The end of a `sync+restart` from the sidecar's events of the service since the write:
    its `restarted`; a `sync-failed`; after a `sync-fallback` (the sync could not be applied,
    a rebuild and rollout instead), the `job-finished` of that rollout; a `job-finished` that
    is not ok. None while none of these happened."""
    fallback: str | None = None
    for e in events:
        kind = e.get("event")
        at = float(e.get("at", 0))
        if kind == "restarted":
            return Finish(at, "ok")
        if kind == "sync-failed":
            return Finish(at, f"sync-failed: {e.get('error', '?')}")
        if kind == "sync-fallback":
            fallback = e.get("reason", "?")
        elif kind == "job-finished":
            if fallback is not None:
                return Finish(at, f"sync-fallback ({fallback}), then job {e.get('result')}")
            if e.get("result", "ok") != "ok":
                return Finish(at, f"job-finished: {e.get('result')}")
    return None


def per_edit(total: int | float, edits: int) -> float:
    return total / edits if edits else float("nan")


def failure_kind(status: int, body: str) -> str:
    """A failed request's status, or for no answer the exception's name (`Entry.get` puts
    `<type>: <message>` in the body): refused and reset connections are the published port
    without a container behind it, timeouts a connect that hangs (see bench/README.md on the
    neighbour cache)."""
    return str(status) if status else f"error {body.split(':', 1)[0]}"


def edits_figures(
    measured: Json, requests: Sequence[Sequence[Any]], creates: int, added: Json
) -> Json:
    """One tool's edit phase: `measured` as bench.rebuild.measure_edits returns it, the load's
    requests sent during the phase ([sent, done, status, body]), the containers created then
    (docker events) and what the phase added to the tool's counters."""
    edits = int(measured["edits"])
    failed = [r for r in requests if r[2] != 200]
    kinds: dict[str, int] = {}
    for r in failed:
        kind = failure_kind(r[2], r[3])
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        **measured,
        "requests": len(requests),
        "failed": len(failed),
        "failed_per_edit": per_edit(len(failed), edits),
        "failed_by_kind": kinds,
        "creates": creates,
        "creates_per_edit": per_edit(creates, edits),
        "syncs_per_edit": per_edit(added["syncs"], edits),
        "builds_per_edit": per_edit(added["builds"], edits),
        "counters": added,
    }


def bulk_live(
    sentinels_s: float | None, first_sweep_missing: int, all_s: float | None
) -> float | None:
    """Time until the last file of a bulk change was served: the sentinels' time when the full
    sweep right after them found every file served (the sweep cannot date the others more
    finely), else when re-sweeping the missing ones found the last; None if never."""
    if sentinels_s is None:
        return None
    return sentinels_s if first_sweep_missing == 0 else all_s


def after_checkout(bulk: Json) -> float | None:
    """Time until the last file of the branch switch was served, from the moment `git
    checkout` returned (the workspace in its final state): git itself takes 0.6-1.8 s here
    to write 3,000 files, which no watcher can shorten."""
    live = bulk["live_s"]
    return None if live is None else live - bulk["checkout_s"]


def never(seconds: float | None, within: float) -> str:
    """A time, or 'never within N s'."""
    return f"{seconds:.3f} s" if seconds is not None else f"never within {within:g} s"


@dataclass(frozen=True)
class Target:
    name: str
    ok: bool
    text: str  # the target and what was measured, for the report


def _within(name: str, what: str, e: Json, w: Json, factor: float) -> Target:
    """The sidecar's edit-to-live median at most `factor` x compose watch's, every edit live."""
    a, b = e["median"], w["median"]
    ok = a == a and b == b and a <= factor * b and e["timeouts"] == 0  # a == a: not NaN
    return Target(
        name,
        ok,
        f"{what} edit-to-live <= {factor:g}x compose watch: {a:.3f} s vs {factor * b:.3f} s",
    )


def _zero(name: str, what: str, value: float, shown: str = "") -> Target:
    return Target(name, value == 0, f"0 {what}: {shown or value}")


def targets(sc: Json, cw: Json) -> list[Target]:
    """The issue's targets for the sidecar, from both tools' figures of the same run (each
    scenario present in both, or skipped)."""
    out: list[Target] = []
    if "edits" in sc and "edits" in cw:
        e, w = sc["edits"], cw["edits"]
        out += [
            _within("sync_edit_to_live_le_0.3x", "sync", e, w, 0.3),
            _zero(
                "sync_zero_failed_requests",
                "failed requests per edit",
                e["failed"],
                f"{e['failed_per_edit']:.2f} ({e['failed']} in all)",
            ),
            _zero(
                "sync_zero_containers_created",
                "containers created per edit",
                e["creates"],
                f"{e['creates_per_edit']:.2f}",
            ),
        ]
    if "touch" in sc:
        out.append(_zero("touch_zero_syncs", "syncs after a touch", sc["touch"]["syncs"]))
    if "delete" in sc:
        d = sc["delete"]
        out.append(
            Target(
                "delete_propagated",
                d["seconds"] is not None,
                f"a deleted file disappears (within {d['wait']:g} s): "
                f"{never(d['seconds'], d['wait'])}",
            )
        )
    if "bulk" in sc:
        b = sc["bulk"]
        after = after_checkout(b)
        out += [
            Target(
                "bulk_live_within_2s",
                after is not None and after <= 2.0,
                f"{b['files']} files live within 2 s of the end of the checkout: "
                f"{never(after, b['wait'])} (of its start: {never(b['live_s'], b['wait'])})",
            ),
            _zero("bulk_zero_missing", "files missing after", b["missing_after"]),
            Target(
                "bulk_one_batch",
                b["counters"]["batches"] == 1,
                f"one batch: {b['counters']['batches']}",
            ),
        ]
    if "restart" in sc:
        r = sc["restart"]
        failed = r["failed_in_windows"] + r["failed_outside_windows"]
        out.append(
            Target(
                "restart_zero_failed_requests",
                failed == 0 and r["redeploys_not_ok"] == 0,
                f"sync+restart of 2 served replicas, 0 failed requests: {failed}"
                f" ({r['redeploys_not_ok']} not ok)",
            )
        )
    if "rebuild" in sc and "rebuild" in cw:
        out.append(
            _within("rebuild_edit_to_live_le_0.6x", "rebuild", sc["rebuild"], cw["rebuild"], 0.6)
        )
    return out
