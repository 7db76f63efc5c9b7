"""`sidecar status` and `sidecar check`: read what the daemon published in Redis."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import redis
import redis.asyncio as aioredis

from sidecar.core.keys import Keys
from sidecar.core.versions import Version


def collect(r: redis.Redis, keys: Keys) -> dict[str, Any]:
    """The whole picture from Redis in two round trips (`sidecar status --json`)."""
    pipe = r.pipeline(transaction=False)
    _queue_head(pipe, keys)
    head = pipe.execute()
    names = _names(head)
    pipe = r.pipeline(transaction=False)
    for name in names:
        _queue_service(pipe, keys, name)
    return _assemble(keys, head, names, pipe.execute())


async def collect_async(r: aioredis.Redis, keys: Keys) -> dict[str, Any]:
    """The same from an asyncio client (`GET /v1/status`)."""
    pipe = r.pipeline(transaction=False)
    _queue_head(pipe, keys)
    head = await pipe.execute()
    names = _names(head)
    pipe = r.pipeline(transaction=False)
    for name in names:
        _queue_service(pipe, keys, name)
    return _assemble(keys, head, names, await pipe.execute())


# The reads are queued on either client's pipeline (their queueing methods are the same)
def _queue_head(pipe: Any, keys: Keys) -> None:
    pipe.get(keys.heartbeat)
    pipe.pttl(keys.heartbeat)
    pipe.smembers(keys.services)
    pipe.hgetall(keys.project_info)
    pipe.hgetall(keys.git)


def _names(head: list[Any]) -> list[str]:
    return sorted(str(n) for n in head[2])


_PER_SERVICE = 6


def _queue_service(pipe: Any, keys: Keys, name: str) -> None:
    pipe.hgetall(keys.service(name))
    pipe.hlen(keys.hashes(name))
    pipe.lrange(keys.rotation(name), 0, -1)
    pipe.get(keys.desired(name))
    pipe.hgetall(keys.instances(name))
    pipe.hgetall(keys.versions(name))


def _assemble(keys: Keys, head: list[Any], names: list[str], rows: list[Any]) -> dict[str, Any]:
    beat_raw, ttl_ms, _, project_info, git = head
    beat = json.loads(str(beat_raw)) if beat_raw else None
    services = {
        name: _service(rows[i * _PER_SERVICE : (i + 1) * _PER_SERVICE])
        for i, name in enumerate(names)
    }
    return {
        "project": keys.project,
        "alive": beat is not None and not troubled_threads(beat),
        "threads": (beat or {}).get("threads", {}),
        "heartbeat": beat,
        "heartbeat_ttl_ms": ttl_ms if beat else None,
        "project_info": {str(k): str(v) for k, v in project_info.items()},
        # delivery from git (empty without git_remote): remote (redacted), branch, commit...
        "git": {str(k): str(v) for k, v in git.items()},
        "services": services,
    }


def _service(row: list[Any]) -> dict[str, Any]:
    fields, hashes, rotation, desired, instances, versions = row
    info: dict[str, Any] = {str(k): str(v) for k, v in fields.items()}
    info["files"] = str(max(0, int(hashes) - 1))
    info["rotation"] = [str(u) for u in rotation]
    info["desired"] = str(desired) if desired else info.get("replicas", "")
    table = [_instance(str(cid), str(raw)) for cid, raw in instances.items()]
    states = [i["state"] for i in table]
    info["instances"] = {s: states.count(s) for s in sorted(set(states))}
    info["instance_list"] = sorted(table, key=lambda i: (i["name"], i["id"]))
    info["versions"] = _versions(versions)
    return info


def _instance(cid: str, raw: str) -> dict[str, str]:
    """One row of the instance table: {id, name, url, state, since}."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {
        "id": cid,
        "name": str(data.get("name", "")),
        "url": str(data.get("url", "")),
        "state": str(data.get("state", "?")),
        "since": str(data.get("since", "")),
    }


def _versions(raw: dict[Any, Any]) -> list[dict[str, Any]]:
    """The recorded versions, newest first (unreadable records left out)."""
    out = []
    for value in raw.values():
        try:
            out.append(asdict(Version.from_dict(json.loads(str(value)))))
        except (ValueError, TypeError, AttributeError):
            continue
    return sorted(out, key=lambda v: -int(v["version"]))


def troubled_threads(beat: dict[str, Any]) -> dict[str, str]:
    """The daemon's supervised threads that are not running (restarting, dead), with why."""
    threads = beat.get("threads") or {}
    return {str(n): str(st) for n, st in threads.items() if st != "running"}


def verdict(beat_raw: str | bytes | None) -> tuple[bool, str]:
    """`sidecar check`'s answer from the heartbeat key: healthy only when it is fresh and
    every supervised thread runs."""
    if not beat_raw:
        return False, "unhealthy: no fresh heartbeat"
    try:
        beat = json.loads(beat_raw)
    except ValueError:
        return False, "unhealthy: unreadable heartbeat"
    bad = troubled_threads(beat)
    if bad:
        return False, "unhealthy: " + "; ".join(f"thread {n} {st}" for n, st in sorted(bad.items()))
    return True, "healthy"


def _ago(ts: str) -> str:
    try:
        secs = time.time() - float(ts)
    except ValueError:
        return "-"
    if secs < 120:
        return f"{secs:.0f}s ago"
    return f"{secs / 60:.0f}m ago" if secs < 7200 else f"{secs / 3600:.0f}h ago"


_NOT_RUNNING = frozenset({"die", "kill", "stop", "oom", "destroy"})


def _running(states: dict[str, int]) -> int:
    """Instances that are up (starting, serving, draining, unhealthy or paused)."""
    return sum(n for s, n in states.items() if s not in _NOT_RUNNING)


def render(state: dict[str, Any]) -> str:
    beat = state["heartbeat"]
    alive = f"alive (pid {beat['pid']} on {beat['host']})" if beat else "NOT RUNNING (no heartbeat)"
    lines = [f"project {state['project']}: daemon {alive}"]
    if beat:
        lines += [f"thread {n} {st}" for n, st in sorted(troubled_threads(beat).items())]
    git = state.get("git") or {}
    if git:
        commit = (git.get("commit") or "?")[:12]
        line = f"git {git.get('remote', '?')} {git.get('branch', '?')} at {commit}"
        if git.get("subject"):
            line += f" ({git['subject'][:60]})"
        if git.get("last_result") in ("refused", "failed"):
            line += f"; last update {git['last_result']}: {git.get('last_error', '')[:160]}"
        lines.append(line)
    err = state["project_info"].get("load_error")
    if err:
        lines.append(f"compose file error (last good model kept): {err.splitlines()[-1]}")
    header = (
        "SERVICE",
        "IMAGE",
        "CONTEXT",
        "FILES",
        "LAST BUILD",
        "RESULT",
        "DURATION",
        "DESIRED",
        "RUNNING",
        "SERVING",
        "STATE",
    )
    rows = [header]
    for name, info in state["services"].items():
        at = info.get("last_build_at")
        rows.append(
            (
                name,
                info.get("image") or "-",
                info.get("context") or "(image only)",
                info.get("files", "0") if info.get("context") else "-",
                _ago(at) if at else "never",
                info.get("last_build_result", "-"),
                f"{float(info['last_build_duration']):.2f}s"
                if info.get("last_build_duration")
                else "-",
                info.get("desired") or "-",
                str(_running(info.get("instances", {}))) if info.get("served") == "1" else "-",
                str(len(info.get("rotation") or [])) if info.get("served") == "1" else "-",
                info.get("state") or ("ok" if info.get("served") == "1" else "-"),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for name, info in state["services"].items():
        if info.get("last_build_result") == "failed" and info.get("last_build_error"):
            lines.append(
                f"\n{name}: last build failed:\n  "
                + "\n  ".join(info["last_build_error"].splitlines()[-8:])
            )
    syncs = [_last_sync(name, info) for name, info in state["services"].items()]
    lines += [line for line in syncs if line]
    return "\n".join(lines)


def _last_sync(name: str, info: dict[str, Any]) -> str:
    """`web: last sync 3s ago: ok, 12 files in 0.04s` (develop.watch), or ''."""
    at = info.get("last_sync_at")
    if not at:
        return ""
    seconds = float(info.get("last_sync_seconds") or 0)
    line = (
        f"{name}: last sync {_ago(at)}: {info.get('last_sync_result', '?')}, "
        f"{info.get('last_sync_files', '0')} files in {seconds:.2f}s"
    )
    if info.get("last_sync_result") == "failed" and info.get("last_sync_error"):
        line += f": {info['last_sync_error']}"
    return line


def watch_frame(text: str, tty: bool, at: float, interval: float) -> str:
    """One frame of `sidecar status --watch`, ready to write. On a terminal it redraws in
    place (cursor home, each line cleared to its end, the rest of the screen cleared: no
    flicker); elsewhere (a pipe, a CI log) it is plain text after a separator line."""
    stamp = time.strftime("%H:%M:%S", time.localtime(at))
    if not tty:
        return f"--- {stamp} ---\n{text}\n"
    header = f"every {interval:g}s, {stamp} (Ctrl-C to stop)"
    return (
        "\x1b[H"
        + "".join(f"{line}\x1b[K\n" for line in [header, "", *text.splitlines()])
        + "\x1b[J"
    )
