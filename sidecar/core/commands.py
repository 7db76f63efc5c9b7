"""Commands that arrive through Redis: parsing and validation, pure.

A command is one entry of the project's command stream (`XADD <prefix>:<project>:commands *
action scale service web replicas 3`). Everything in it is untrusted: it is decoded,
size-checked, and matched against the project model and the limits before anything acts on
it; no field ever reaches a shell, and only validated values reach a Docker argument."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from sidecar.core.model import Project

MAX_FIELD_BYTES = 256
MAX_FIELDS = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class Action(StrEnum):
    SCALE = "scale"  # to N instances
    SPAWN = "spawn"  # one more instance
    DESTROY = "destroy"  # one fewer, or a named instance
    REBUILD = "rebuild"  # build and roll out even without a source change
    REDEPLOY = "redeploy"  # roll out the current image
    ROLLBACK = "rollback"  # roll out the previous good version's image, without a build
    DRIFT = "drift"  # compare running image digests with the registry's (`apply`: pull)
    PAUSE = "pause"  # stop reacting to file changes (one service or all)
    RESUME = "resume"
    RELOAD = "reload"  # re-read the compose project
    QUIT = "quit"  # graceful stop after in-flight work
    STOP = "stop"  # immediate stop


# redeploy without a service redeploys every service (`sidecar signal redeploy`)
_NEEDS_SERVICE = {Action.SCALE, Action.SPAWN, Action.DESTROY, Action.REBUILD, Action.ROLLBACK}
_SERVED_ONLY = {Action.SCALE, Action.SPAWN, Action.DESTROY}
_NO_SERVICE = {Action.RELOAD, Action.QUIT, Action.STOP, Action.DRIFT}
_ALLOWED_FIELDS = {"action", "service", "replicas", "instance", "id", "project", "apply"}
_YES = {"1", "true", "yes"}
_NO = {"", "0", "false", "no"}


class CommandError(ValueError):
    """A rejected command; the message is what the caller reads in the result."""


@dataclass(frozen=True)
class Command:
    id: str
    action: Action
    service: str | None = None
    replicas: int | None = None
    instance: str | None = None
    apply: bool = False  # drift: pull what drifted


@dataclass(frozen=True)
class Limits:
    max_replicas: int  # global cap for any service
    per_service_max: Mapping[str, int]  # x-sidecar max_replicas
    per_service_min: Mapping[str, int]  # x-sidecar min_replicas


def _decode(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    if len(raw) > MAX_FIELDS:
        raise CommandError(f"too many fields ({len(raw)} > {MAX_FIELDS})")
    out: dict[str, str] = {}
    for key, value in raw.items():
        k = _text(key, "field name")
        v = _text(value, f"field {k!r}")
        if k not in _ALLOWED_FIELDS:
            raise CommandError(
                f"unknown field {k!r} (allowed: {', '.join(sorted(_ALLOWED_FIELDS))})"
            )
        out[k] = v
    return out


def _text(value: bytes | str, what: str) -> str:
    data = value.encode() if isinstance(value, str) else bytes(value)
    if len(data) > MAX_FIELD_BYTES:
        raise CommandError(f"{what} is too long ({len(data)} bytes > {MAX_FIELD_BYTES})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{what} is not valid UTF-8") from None
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise CommandError(f"{what} contains control characters")
    return text


def _replicas(text: str | None, limit: int) -> int:
    if text is None or text == "":
        raise CommandError("replicas is missing")
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise CommandError(f"replicas must be a non-negative whole number, got {text!r}")
    n = int(text)
    if n > limit:
        raise CommandError(f"replicas {n} is above the limit of {limit}")
    return n


def _action(fields: Mapping[str, str]) -> Action:
    try:
        return Action(fields.get("action", ""))
    except ValueError:
        known = ", ".join(a.value for a in Action)
        given = fields.get("action", "")
        raise CommandError(f"unknown action {given!r} (known: {known})") from None


def _service(action: Action, fields: Mapping[str, str], project: Project) -> str | None:
    service = fields.get("service") or None
    if action in _NO_SERVICE and service:
        raise CommandError(f"{action} takes no service")
    if action in _NEEDS_SERVICE and not service:
        raise CommandError(f"{action} needs a service")
    if service is None:
        return None
    if not _NAME.match(service) or service not in project.services:
        raise CommandError(f"unknown service {service!r} in project {project.name!r}")
    spec = project.services[service]
    if action in _SERVED_ONLY and not spec.served:
        raise CommandError(f"{service} is not served (no x-sidecar): it cannot be scaled")
    if action is Action.REBUILD and not spec.built:
        raise CommandError(f"{service} has no build section: nothing to rebuild")
    return service


def _counts(
    action: Action, service: str | None, fields: Mapping[str, str], limits: Limits, count: int
) -> tuple[int | None, str | None]:
    """(replicas, instance) for the actions that take them, within the limits."""
    limit = min(limits.max_replicas, limits.per_service_max.get(service or "", limits.max_replicas))
    minimum = limits.per_service_min.get(service or "", 0)
    if "replicas" in fields and action is not Action.SCALE:
        raise CommandError(f"{action} takes no replicas")
    if "instance" in fields and action is not Action.DESTROY:
        raise CommandError(f"{action} takes no instance")
    if action is Action.SCALE:
        replicas = _replicas(fields.get("replicas"), limit)
        if replicas < minimum:
            raise CommandError(f"replicas {replicas} is below {service}'s minimum of {minimum}")
        return replicas, None
    if action is Action.SPAWN and count + 1 > limit:
        raise CommandError(f"{service} already runs {count}: the limit is {limit}")
    if action is Action.DESTROY:
        instance = fields.get("instance") or None
        if instance is not None and not _NAME.match(instance):
            raise CommandError(f"instance {instance!r} is not a valid container name")
        if count - 1 < minimum:
            raise CommandError(
                f"{service} runs {count}: one fewer would go below its minimum of {minimum}"
            )
        return None, instance
    return None, None


def parse_command(
    entry_id: str,
    raw: Mapping[bytes | str, bytes | str],
    project: Project,
    limits: Limits,
    current: Mapping[str, int] | None = None,
) -> Command:
    """Validate one stream entry. `current` is the service -> running count, for the
    bounds of spawn and destroy. Raises CommandError with a message for the caller."""
    fields = _decode(raw)
    cid = fields.get("id") or entry_id
    if not _ID.match(cid):
        raise CommandError(f"id {cid!r} is not a valid command id")
    if fields.get("project") not in (None, project.name):
        raise CommandError(f"command for project {fields['project']!r}, this is {project.name!r}")
    action = _action(fields)
    service = _service(action, fields, project)
    count = (current or {}).get(service or "", 0)
    replicas, instance = _counts(action, service, fields, limits, count)
    return Command(cid, action, service, replicas, instance, _apply(action, fields))


def _apply(action: Action, fields: Mapping[str, str]) -> bool:
    value = fields.get("apply")
    if value is None:
        return False
    if action is not Action.DRIFT:
        raise CommandError(f"{action} takes no apply")
    if value.lower() not in _YES | _NO:
        raise CommandError(f"apply must be 1 or 0, got {value[:20]!r}")
    return value.lower() in _YES
