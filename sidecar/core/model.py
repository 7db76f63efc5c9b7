"""The project model: what compose says the project is, as plain frozen data.

Built from `docker compose config --format json` (see `compose.py`), so interpolation,
profiles, `include`, `extends` and multiple `-f` files are resolved by Compose itself.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from sidecar.core.serving import ServeError, ServeSpec, declared_replicas, parse_serve

# Parts of a service definition that change how many instances run or how they are routed,
# not what an instance is: changing them converges in place instead of replacing instances.
_SERVE_FIELDS = ("x-sidecar", "scale")


class ProjectError(Exception):
    """The compose project cannot be loaded (syntax error, unknown file, bad interpolation)."""


@dataclass(frozen=True)
class WatchRule:
    """One `develop.watch` entry of a service."""

    path: str
    action: str
    ignore: tuple[str, ...] = ()
    target: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    # Absolute build context, or None for image-only services (not watched, never built).
    context: str | None = None
    # Absolute path of the Dockerfile (may lie outside the context), None when inline or absent.
    dockerfile: str | None = None
    watch: tuple[WatchRule, ...] = ()
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


def _parse_watch(develop: Any, working_dir: str) -> tuple[WatchRule, ...]:
    if not isinstance(develop, dict):
        return ()
    rules = []
    for entry in develop.get("watch") or ():
        rules.append(
            WatchRule(
                path=_join(working_dir, str(entry["path"])),
                action=str(entry.get("action", "rebuild")),
                ignore=tuple(str(i) for i in entry.get("ignore") or ()),
                target=entry.get("target"),
            )
        )
    return tuple(rules)


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
        try:
            serve = parse_serve(svc_name, svc)
        except ServeError as exc:
            serve_error = str(exc)
        if serve is not None:
            replicas = declared_replicas(serve, svc)
        services[svc_name] = ServiceSpec(
            name=svc_name,
            context=context,
            dockerfile=dockerfile,
            watch=_parse_watch(svc.get("develop"), working_dir),
            image=svc.get("image"),
            config_digest=_digest(_instance_definition(svc)),
            build_digest=_digest(svc.get("build")),
            extensions=extensions,
            serve=serve,
            serve_error=serve_error,
            replicas=replicas,
            serve_digest=_digest([_serving_part(svc), replicas]),
        )
    return Project(name, working_dir, tuple(compose_files), services)
