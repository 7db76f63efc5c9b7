"""The project model: what compose says the project is, as plain frozen data.

Built from `docker compose config --format json` (see `compose.py`), so interpolation,
profiles, `include`, `extends` and multiple `-f` files are resolved by Compose itself.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from sidecar.core.serving import (
    ServeError,
    ServeSpec,
    declared_replicas,
    parse_serve,
    push_target,
)

# Parts of a service definition that change how many instances run or how they are routed,
# not what an instance is: changing them converges in place instead of replacing instances.
# (`develop` is not part of an instance at all: a changed watch rule replaces nothing.)
_SERVE_FIELDS = ("x-sidecar", "scale", "develop")


class ProjectError(Exception):
    """The compose project cannot be loaded (syntax error, unknown file, bad interpolation).
    `services`: service -> what is wrong with it, when the fault lies in a service's own
    definition (compose refuses a whole file for one bad develop.watch rule)."""

    def __init__(self, message: str, services: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.services = dict(services or {})


def raw_watch_errors(documents: list[Any]) -> dict[str, str]:
    """service -> its develop.watch fault, from the compose files as written (raw YAML)."""
    out: dict[str, str] = {}
    for doc in documents:
        services = doc.get("services") if isinstance(doc, Mapping) else None
        for name, svc in (services or {}).items() if isinstance(services, Mapping) else ():
            if not isinstance(svc, Mapping):
                continue
            error = watch_error(str(name), svc.get("develop"), svc.get("build") is not None)
            if error:
                out[str(name)] = error
    return out


@dataclass(frozen=True)
class ExecSpec:
    """`develop.watch[].exec` of a sync+exec rule: run in each container after the sync."""

    command: tuple[str, ...]
    user: str | None = None
    privileged: bool = False
    working_dir: str | None = None
    environment: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WatchRule:
    """One `develop.watch` entry of a service."""

    path: str
    action: str
    ignore: tuple[str, ...] = ()
    target: str | None = None
    include: tuple[str, ...] = ()
    initial_sync: bool = False
    exec: ExecSpec | None = None
    index: int = 0  # its position in the service's list (events name rules by it)

    @property
    def syncs(self) -> bool:
        return self.action in SYNC_ACTIONS

    @property
    def restarts(self) -> bool:
        return self.action in ("restart", "sync+restart")


ACTIONS = ("rebuild", "sync", "restart", "sync+restart", "sync+exec")
SYNC_ACTIONS = ("sync", "sync+restart", "sync+exec")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    # Absolute build context, or None for image-only services (not watched, never built).
    context: str | None = None
    # Absolute path of the Dockerfile (may lie outside the context), None when inline or absent.
    dockerfile: str | None = None
    watch: tuple[WatchRule, ...] = ()
    # Set when a develop.watch rule is invalid: the service is then left exactly as it is.
    watch_error: str | None = None
    image: str | None = None
    # Digest of the whole resolved service definition: a change means "recreate".
    config_digest: str = ""
    # Digest of the build section alone: a change means "rebuild first".
    build_digest: str = ""
    # Free-form `x-*` extensions.
    extensions: Mapping[str, Any] = field(default_factory=dict)
    # Served services (x-sidecar / sidecar.* labels): routed, health-checked, rolled out.
    serve: ServeSpec | None = None
    # Set when x-sidecar is invalid: the service is then left exactly as it is.
    serve_error: str | None = None
    replicas: int = 1
    # Digest of the serving settings alone (replicas, route, probes): a change is converged
    # in place, without replacing instances.
    serve_digest: str = ""
    # what `docker stop` of an instance sends, and how long it waits (compose's defaults)
    stop_signal: str | None = None
    stop_grace_s: float = 10.0
    # Digest of the develop section: a change re-syncs (rules added, changed or removed)
    watch_digest: str = ""
    # host directories and files bind-mounted into the containers: a sync there would copy
    # a file onto itself, so (as compose) it is skipped
    bind_sources: tuple[str, ...] = ()
    # x-sidecar push: where each good build is tagged and pushed (None: nowhere)
    push: str | None = None

    def bind_mounted(self, path: str) -> bool:
        return any(path == b or path.startswith(b.rstrip("/") + "/") for b in self.bind_sources)

    @property
    def sync_rules(self) -> tuple[WatchRule, ...]:
        return tuple(r for r in self.watch if r.syncs)

    @property
    def invalid(self) -> str | None:
        """Why the service must be left as it is, if anything of it is invalid."""
        return self.serve_error or self.watch_error

    @property
    def served(self) -> bool:
        return self.serve is not None

    @property
    def built(self) -> bool:
        return self.context is not None

    @property
    def watch_roots(self) -> tuple[str, ...]:
        """Where changes affect this service: its develop.watch paths if any, else its context."""
        if self.watch:
            return tuple(rule.path for rule in self.watch)
        return (self.context,) if self.context else ()


@dataclass(frozen=True)
class Project:
    name: str
    working_dir: str
    compose_files: tuple[str, ...]
    services: Mapping[str, ServiceSpec]

    def built_services(self) -> list[ServiceSpec]:
        return [s for s in self.services.values() if s.built]


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _join(base: str, path: str) -> str:
    p = PurePosixPath(path)
    return posixpath.normpath(str(p if p.is_absolute() else PurePosixPath(base) / p))


def _is_remote(context: str) -> bool:
    """Compose/buildx remote contexts: URLs, git SSH addresses, `github.com/...` shorthands."""
    return "://" in context or context.startswith(("git@", "github.com/"))


def _parse_build(build: Any, working_dir: str) -> tuple[str | None, str | None]:
    if build is None:
        return None, None
    if isinstance(build, str):
        build = {"context": build}
    context = build.get("context")
    if not context or _is_remote(str(context)):
        # Remote (git/URL) contexts have nothing local to watch.
        return None, None
    context = _join(working_dir, str(context))
    if build.get("dockerfile_inline") is not None:
        return context, None
    return context, _join(context, str(build.get("dockerfile") or "Dockerfile"))


def watch_error(service: str, develop: Any, built: bool) -> str | None:
    """What is wrong with a service's `develop.watch`, naming the rule and the field; None
    when every rule is valid. Works on the resolved config and on raw YAML alike (compose
    itself refuses some of these before the sidecar sees a model: see `ProjectError`)."""
    if develop is None:
        return None
    if not isinstance(develop, Mapping):
        return f"service {service}: develop must be a mapping"
    rules = develop.get("watch") or []
    if not isinstance(rules, list):
        return f"service {service}: develop.watch must be a list"
    for i, rule in enumerate(rules):
        problem = _rule_error(rule, built)
        if problem:
            return f"service {service}: develop.watch[{i}]{problem}"
    return None


def _rule_error(rule: Any, built: bool) -> str | None:
    """One rule's fault, as `.field: what` (None: valid)."""
    if not isinstance(rule, Mapping):
        return " must be a mapping"
    action = rule.get("action")
    exec_ = rule.get("exec")
    problems = [
        (action not in ACTIONS, f".action: {action!r} is not one of {', '.join(ACTIONS)}"),
        (not rule.get("path"), ".path is required"),
        (action in SYNC_ACTIONS and not rule.get("target"), f".target is required for {action}"),
        (action == "rebuild" and not built, ".action: rebuild needs a build section (none)"),
        (exec_ is not None and not isinstance(exec_, Mapping), ".exec must be a mapping"),
        (
            action == "sync+exec"
            and not (exec_ if isinstance(exec_, Mapping) else {}).get("command"),
            ".exec.command is required for sync+exec",
        ),
        (not isinstance(rule.get("ignore") or [], list), ".ignore must be a list of patterns"),
        (not isinstance(rule.get("include") or [], list), ".include must be a list of patterns"),
    ]
    return next((text for bad, text in problems if bad), None)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())  # compose's shell-form command, split as compose does
    return tuple(str(v) for v in value)


def _environment(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, Mapping):
        return tuple((str(k), "" if v is None else str(v)) for k, v in value.items())
    pairs = (str(v).partition("=") for v in value or ())
    return tuple((k, v) for k, _, v in pairs)


def _parse_exec(entry: Mapping[str, Any]) -> ExecSpec | None:
    spec = entry.get("exec")
    if not isinstance(spec, Mapping):
        return None
    return ExecSpec(
        command=_strings(spec.get("command")),
        user=spec.get("user"),
        privileged=bool(spec.get("privileged")),
        working_dir=spec.get("working_dir"),
        environment=_environment(spec.get("environment")),
    )


def _parse_watch(develop: Any, working_dir: str) -> tuple[WatchRule, ...]:
    if not isinstance(develop, dict):
        return ()
    rules = []
    for i, entry in enumerate(develop.get("watch") or ()):
        rules.append(
            WatchRule(
                path=_join(working_dir, str(entry["path"])),
                action=str(entry.get("action", "rebuild")),
                ignore=_strings(entry.get("ignore")),
                target=entry.get("target"),
                include=_strings(entry.get("include")),
                initial_sync=bool(entry.get("initial_sync") or entry.get("x-initialSync")),
                exec=_parse_exec(entry),
                index=i,
            )
        )
    return tuple(rules)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def parse_duration(value: Any, default: float) -> float:
    """Compose durations (`10s`, `1m30s`, `500ms`, or seconds as a number) in seconds."""
    if value is None or value == "":
        return default
    if isinstance(value, int | float):
        return float(value)
    parts = _DURATION.findall(str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value).strip():
        return default
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _bind_sources(volumes: Any, working_dir: str) -> tuple[str, ...]:
    """Host paths of the service's bind mounts (compose config prints the long syntax)."""
    out = []
    for v in volumes or ():
        if isinstance(v, Mapping) and v.get("type") == "bind" and v.get("source"):
            out.append(_join(working_dir, str(v["source"])))
    return tuple(out)


def _instance_definition(svc: Mapping[str, Any]) -> dict[str, Any]:
    """The definition minus the serving settings and labels that only carry them."""
    out = {k: v for k, v in svc.items() if k not in _SERVE_FIELDS}
    deploy = dict(out.get("deploy") or {})
    deploy.pop("replicas", None)
    out["deploy"] = deploy
    labels = out.get("labels") or {}
    if isinstance(labels, Mapping):
        out["labels"] = {k: v for k, v in labels.items() if not str(k).startswith("sidecar.")}
    return out


def _serving_part(svc: Mapping[str, Any]) -> dict[str, Any]:
    labels = svc.get("labels") or {}
    sidecar_labels = (
        {k: v for k, v in labels.items() if str(k).startswith("sidecar.")}
        if isinstance(labels, Mapping)
        else {}
    )
    return {"x": svc.get("x-sidecar"), "labels": sidecar_labels}


def parse_project(config: Mapping[str, Any], compose_files: tuple[str, ...] = ()) -> Project:
    """Turn compose's resolved JSON config into a `Project`. Pure: no I/O."""
    name = str(config.get("name") or "")
    services_cfg = config.get("services") or {}
    working_dir = str(config.get("working_dir") or "")
    if not working_dir and compose_files:
        working_dir = str(PurePosixPath(compose_files[0]).parent)
    services: dict[str, ServiceSpec] = {}
    for svc_name, svc in sorted(services_cfg.items()):
        context, dockerfile = _parse_build(svc.get("build"), working_dir)
        extensions = {k: v for k, v in svc.items() if k.startswith("x-")}
        serve, serve_error, replicas = None, None, 1
        push = None
        try:
            serve = parse_serve(svc_name, svc)
            push = push_target(svc_name, svc)
        except ServeError as exc:
            serve_error = str(exc)
        if serve is not None:
            replicas = declared_replicas(serve, svc)
        develop = svc.get("develop")
        bad_watch = watch_error(svc_name, develop, context is not None)
        services[svc_name] = ServiceSpec(
            name=svc_name,
            context=context,
            dockerfile=dockerfile,
            watch=() if bad_watch else _parse_watch(develop, working_dir),
            watch_error=bad_watch,
            image=svc.get("image"),
            config_digest=_digest(_instance_definition(svc)),
            build_digest=_digest(svc.get("build")),
            extensions=extensions,
            serve=serve,
            serve_error=serve_error,
            replicas=replicas,
            serve_digest=_digest([_serving_part(svc), replicas]),
            stop_signal=svc.get("stop_signal"),
            watch_digest=_digest(develop),
            bind_sources=_bind_sources(svc.get("volumes"), working_dir),
            stop_grace_s=parse_duration(svc.get("stop_grace_period"), 10.0),
            push=push if context is not None else None,
        )
    return Project(name, working_dir, tuple(compose_files), services)
