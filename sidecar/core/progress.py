"""What the CLI prints while a command it sent is carried out (`sidecar rebuild | redeploy |
scale | spawn | destroy`): which entries of the events stream and which changes of the
instance tables become a line, and when the command is done. Pure: the CLI reads Redis
(the events stream from just before its XADD, `instances:<svc>` polled) and prints.

The instance table (`sidecar:<project>:instances:<svc>`, container id -> JSON `{name,
state, url, since}`) is where a rollout's steps show: an instance appears `starting` when
its probe begins, turns `serving` when it joins the rotation, `draining` when it leaves,
and disappears (or turns `gone`) when it is stopped and removed. Polled, a short state can
be missed (a quick probe: absent -> serving); `table_steps` says every step in between."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

# the verbs that start work on a service: their steps are followed until the answer
FOLLOWED = frozenset({"scale", "spawn", "destroy", "rebuild", "redeploy", "rollback"})

_JOBS = {
    "build": "build started",
    "rollout": "rollout started",
    "converge": "converge started",
    "up": "compose up started",
    "pull": "pull started",
}
_ERROR_MAX = 200
Fields = Mapping[str, str]  # an entry of the events stream
# the lines after which the rotation's size is worth saying
_ROTATION_CHANGES = (
    "joined the rotation",
    "back in the rotation",
    "left the rotation, draining",
    "left the rotation, retired",
)


def follows(action: str) -> bool:
    return action in FOLLOWED


@dataclass(frozen=True)
class Seen:
    """One row of an instance table."""

    name: str
    state: str
    since: float = 0.0


@dataclass(frozen=True)
class Step:
    """One line of progress: what happened to which service, and when (the daemon's clock:
    an event's `at`, a row's `since`; infinity for a row that disappeared)."""

    service: str
    text: str
    at: float = 0.0


@dataclass(frozen=True)
class Answer:
    """A `command-ok` / `command-error` event of the command followed."""

    service: str
    ok: bool
    message: str


def parse_table(raw: Mapping[str, str]) -> dict[str, Seen]:
    """An `instances:<svc>` hash as rows; `gone` rows and unreadable ones count as absent."""
    rows: dict[str, Seen] = {}
    for cid, text in raw.items():
        try:
            info = json.loads(text)
            since = float(info.get("since") or 0)
        except (ValueError, TypeError, AttributeError):
            continue
        state = str(info.get("state") or "")
        if state and state != "gone":
            rows[cid] = Seen(str(info.get("name") or cid[:12]), state, since)
    return rows


def short_name(name: str, project: str) -> str:
    """`myproj-web-3` -> `web-3` (the project is the same for every line)."""
    prefix = f"{project}-"
    return name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else name


# (state before, state after) -> the lines of that change; None: absent (or `gone`)
_TRANSITIONS: dict[tuple[str | None, str | None], tuple[str, ...]] = {
    (None, "starting"): ("started",),
    (None, "serving"): ("started", "healthy, joined the rotation"),
    ("starting", "serving"): ("healthy, joined the rotation",),
    ("draining", "serving"): ("back in the rotation",),
    (None, "draining"): ("left the rotation, draining",),
    ("serving", "draining"): ("left the rotation, draining",),
    ("draining", "starting"): ("restarted",),
    ("draining", None): ("retired",),
    ("serving", None): ("left the rotation, retired",),
    ("starting", None): ("removed before joining",),
}


def _transition(before: str | None, after: str | None) -> list[str]:
    """What a row's change of state says, missed states included."""
    if before == after:
        return []
    found = _TRANSITIONS.get((before, after))
    if found is not None:
        return list(found)
    return ["removed"] if after is None else [after]


def table_steps(
    service: str, before: Mapping[str, Seen], after: Mapping[str, Seen], project: str
) -> list[Step]:
    """The lines between two readings of a service's instance table, oldest change first
    (rows that disappeared last: a retire ends a batch), each change of the rotation with
    the number of instances serving after it."""
    changes: list[tuple[float, str, str | None, str | None]] = []
    for cid in [*after, *(c for c in before if c not in after)]:
        old, new = before.get(cid), after.get(cid)
        row = old or new
        assert row is not None  # the id came from one of the two readings
        changes.append(
            (
                new.since if new else float("inf"),
                short_name(row.name, project),
                old.state if old else None,
                new.state if new else None,
            )
        )
    changes.sort(key=lambda c: (c[0], c[1]))
    serving = sum(1 for row in before.values() if row.state == "serving")
    steps: list[Step] = []
    for at, name, old_state, new_state in changes:
        texts = _transition(old_state, new_state)
        serving += (new_state == "serving") - (old_state == "serving")
        if texts and texts[-1].endswith(_ROTATION_CHANGES):
            texts = [*texts[:-1], f"{texts[-1]} ({serving} serving)"]
        steps += [Step(service, f"{name} {text}", at) for text in texts]
    return steps


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= _ERROR_MAX else last[: _ERROR_MAX - 3] + "..."


def _seconds(fields: Fields) -> str:
    try:
        return f"{float(fields.get('seconds') or 0):.1f}s"
    except ValueError:
        return "?s"


def _reason(reason: str, command_id: str) -> str:
    """`command <id>: scale to 3` -> `scale to 3`; another cause is kept as it is."""
    ours = f"command {command_id}: "
    return reason[len(ours) :] if reason.startswith(ours) else reason


Liner = Callable[[Fields, str], str]  # (the event's fields, its instance's short name)


def _error(label: str) -> Liner:
    def line(f: Fields, _: str) -> str:
        error = _last_line(f.get("error", ""))
        text = f"{label} after {_seconds(f)}" if f.get("seconds") else label
        return f"{text}: {error}" if error else text

    return line


def _deployed(f: Fields, _: str) -> str:
    detail = _last_line(f.get("detail", ""))
    return f"deployed in {_seconds(f)}" + (f": {detail}" if detail else "")


# event kind -> its line ('' for none)
_EVENT_LINES: dict[str, Liner] = {
    "built": lambda f, _: f"built in {_seconds(f)}",
    "build-succeeded": lambda f, _: f"build succeeded in {_seconds(f)}",
    "build-failed": _error("build failed"),
    "deploy-failed": _error("deploy failed"),
    "restart-failed": _error("restart failed"),
    "sync-failed": _error("sync failed"),
    "pulled": lambda f, _: (
        f"pulled in {_seconds(f)}"
        + (": a new image" if f.get("changed") == "1" else ": the image running already")
    ),
    "pull-failed": _error("pull failed"),
    "build-cancelled": lambda f, _: "build cancelled",
    "deploy-cancelled": lambda f, _: "deploy cancelled",
    "deployed": _deployed,
    "instance-unhealthy": lambda f, i: f"{i} unhealthy: {_last_line(f.get('error', ''))}",
    "instance-died": lambda f, i: f"{i} died: {_last_line(f.get('error', ''))}",
    "instance-start-failed": _error("new instances did not start"),
    "synced": lambda f, i: (
        f"{i} caught up on {f.get('files', '?')} synced files" if f.get("reason") == "new" else ""
    ),
    "converged": lambda f, _: f"repaired ({f.get('reason', '')})",
    "service-failed": _error("service failed"),
    "docker-disconnected": _error("docker disconnected"),
    "docker-reconnected": lambda f, _: "docker reconnected",
    "stopped": lambda f, _: "the sidecar stopped",
}


def event_step(
    fields: Fields, services: Collection[str], command_id: str, project: str
) -> Step | None:
    """The line an event of the stream becomes while a command on `services` runs, if any.
    Events of other services, the job's bookkeeping (job-finished) and the answer itself
    (see `answer_of`) print nothing."""
    kind, service = fields.get("event", ""), fields.get("service", "")
    if service and service not in services:
        return None
    job = kind.removesuffix("-started")
    if kind.endswith("-started") and job in _JOBS:
        reason = _reason(fields.get("reason", ""), command_id)
        text = _JOBS[job] + (f" ({reason})" if reason else "")
    elif kind in _EVENT_LINES:
        instance = short_name(fields.get("instance", ""), project) or "?"
        text = _EVENT_LINES[kind](fields, instance)
    else:
        return None
    try:
        at = float(fields.get("at") or 0)
    except ValueError:
        at = 0.0
    return Step(service or "-", text, at) if text else None


def in_order(*steps: Sequence[Step]) -> list[Step]:
    """The lines of one poll (events, then each table's changes) in the order they
    happened; a stable sort, so lines of one change keep their order."""
    return sorted((s for group in steps for s in group), key=lambda s: s.at)


def answer_of(fields: Fields, command_id: str) -> Answer | None:
    """The command's answer, when this event is one (each service of a redeploy of every
    service answers the same id)."""
    if fields.get("event") not in ("command-ok", "command-error"):
        return None
    if fields.get("command") != command_id:
        return None
    ok = fields.get("event") == "command-ok"
    return Answer(fields.get("service", ""), ok, fields.get("message", ""))


def finished(answers: Sequence[Answer], expected: Collection[str]) -> bool:
    """Done when the command was refused (an answer for no service, or for one not asked
    about) or every expected service has answered."""
    if any(a.service not in expected for a in answers):
        return True
    return bool(answers) and {a.service for a in answers} >= set(expected)


def final_lines(answers: Sequence[Answer]) -> list[tuple[str, bool]]:
    """The result lines (text, ok): the message alone for one answer, as before; one line
    per service when several services answered."""
    if len(answers) == 1:
        return [(answers[0].message, answers[0].ok)]
    return [(f"{a.service}: {a.message}", a.ok) for a in answers]


def format_step(step: Step, elapsed: float, width: int) -> str:
    """`  1.2s  web  web-3 started`: seconds since the command was sent, the service."""
    return f"{elapsed:6.1f}s  {step.service:<{width}}  {step.text}"
