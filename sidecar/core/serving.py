"""`x-sidecar` (or `sidecar.*` labels): how a served service is routed, probed and rolled out.

Pure: validated from the resolved compose config of one service. A service without either is
not served and keeps the simple recreate of the core loop."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ServeError(Exception):
    """Invalid serving settings; the message names the service and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthSpec(_Strict):
    type: Literal["http", "tcp", "docker"] = Field(
        default="http",
        description="http: GET `path` expects 2xx/3xx; tcp: connect; docker: the service's own "
        "compose healthcheck (chosen automatically when the service has one).",
    )
    path: str = Field(default="/", description="HTTP path probed (type http).")
    interval: float = Field(default=0.2, gt=0, le=60, description="Seconds between probes.")
    timeout: float = Field(default=1.0, gt=0, le=60, description="Seconds one probe may take.")
    start_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A new instance not healthy within this many seconds is removed and the "
        "rollout fails; the old instances keep serving.",
    )
    successes: int = Field(default=1, ge=1, le=20, description="Consecutive good probes needed.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in " \r\n\t"):
            raise ValueError("must start with / and contain no whitespace")
        return value


class RolloutSpec(_Strict):
    """Modelled on Swarm's `update_config`."""

    parallelism: int = Field(default=1, ge=1, le=100, description="Instances replaced at once.")
    delay: float = Field(default=0.0, ge=0, le=3600, description="Pause between batches (s).")
    order: Literal["start-first", "stop-first"] = Field(
        default="start-first",
        description="start-first: the new instance serves before the old one leaves (zero "
        "downtime); stop-first: the old one leaves first (for services that cannot run twice).",
    )
    failure_action: Literal["pause", "continue"] = Field(
        default="pause",
        description="When a new instance fails its health check: pause (stop the rollout, the "
        "remaining old instances keep serving) or continue with the next batch.",
    )
    monitor: float = Field(
        default=0.0,
        ge=0,
        le=600,
        description="Seconds a new instance is watched after joining the rotation; dying "
        "within it counts as a failed update.",
    )
    proxy_settle: float = Field(
        default=2.5,
        ge=0,
        le=60,
        description="Seconds the proxy may take to apply a rotation change: an instance "
        "removed from the rotation keeps running this long (plus `drain`). Traefik's Redis "
        "provider applies a change at most 2 s after it (providersThrottleDuration).",
    )
    drain: float = Field(
        default=0.5,
        ge=0,
        le=600,
        description="Extra seconds an instance removed from the rotation keeps running so "
        "requests already sent to it can finish.",
    )


class RetrySpec(_Strict):
    """Traefik's retry middleware on the service's router, and a servers transport that makes
    a connection that is not answered fail quickly enough to be retried. Traefik retries only
    when it could
    not send the request to the server at all (connection refused, reset or unreachable before
    the request was written); once a server got the request or answered, whatever the status,
    nothing is retried. So a retried request never reached an application, but a client
    cannot tell: a POST whose connection failed is sent again, to another instance."""

    attempts: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Tries per request, the first included (Traefik's `attempts`); 0 publishes "
        "no middleware. 2 = one retry, which goes to the next server of the round robin: with "
        "one instance killed or stopping, a live one (measured, 10 kills / 10 stops of 1 of 3 "
        "under load: 2 / 0 failed requests, 24 / 15 without retry; bench/failover). More only "
        "helps when several instances fail at once, and multiplies the load a broken service "
        "gets.",
    )
    initial_interval: float | None = Field(
        default=None,
        ge=0,
        le=60,
        description="Seconds before the first retry, doubling up to twice this (Traefik's "
        "`initialInterval`); empty: retry at once (Traefik's default), right for a retry that "
        "goes to another instance.",
    )

    dial_timeout: float = Field(
        default=0.5,
        gt=0,
        le=30,
        description="Seconds Traefik may take to connect to an instance before the attempt "
        "counts as failed and is retried (a servers transport's `dialTimeout`, Traefik's "
        "default 30 s). A killed container's address stops answering at all (its SYNs are "
        "dropped, nothing refuses them), so without it a request sent there hangs instead of "
        "being retried; instances run on the same Docker host, where a connect takes well "
        "under a millisecond.",
    )

    @property
    def enabled(self) -> bool:
        return self.attempts > 0


class ServeSpec(_Strict):
    port: int = Field(ge=1, le=65535, description="Container port the proxy routes to.")
    replicas: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Instances to run; default: `deploy.replicas`, `scale`, else 1.",
    )
    min_replicas: int = Field(
        default=1,
        ge=0,
        le=100,
        description="`destroy` commands never go below this.",
    )
    max_replicas: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="`scale`/`spawn` commands never go above this (nor above the global "
        "`max_replicas` setting).",
    )
    rule: str | None = Field(
        default=None,
        description="Traefik router rule; default ``Host(`<service>.localhost`)``.",
    )
    entrypoints: tuple[str, ...] = Field(default=("web",), description="Traefik entrypoints.")
    health: HealthSpec = Field(default_factory=HealthSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)

    def router_rule(self, service: str) -> str:
        return self.rule or f"Host(`{service}.localhost`)"


def _from_labels(labels: Mapping[str, Any]) -> dict[str, Any]:
    """`sidecar.port=8080`, `sidecar.adapters.health.path=/healthz` ... -> nested dict."""
    out: dict[str, Any] = {}
    for key, value in labels.items():
        if not key.startswith("sidecar."):
            continue
        parts = key.split(".")[1:]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if parts[-1] == "entrypoints":
            node[parts[-1]] = [v.strip() for v in str(value).split(",") if v.strip()]
        else:
            node[parts[-1]] = value
    return out


def _labels(svc: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = svc.get("labels") or {}
    if isinstance(labels, list):  # compose normalises to a mapping, but be lenient
        labels = dict(item.split("=", 1) for item in labels if "=" in item)
    return labels


# a repository reference with its registry (lowercase path, optional tag): Docker's grammar
_PUSH = re.compile(
    r"[a-z0-9.-]+(:[0-9]+)?/[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
)


def parse_serve(service: str, svc: Mapping[str, Any]) -> ServeSpec | None:
    """The service's serving spec, None when it is not served. Raises ServeError."""
    raw: Any = svc.get("x-sidecar")
    labels = _from_labels(_labels(svc))
    if raw is None and not labels:
        return None
    if raw is None:
        raw = labels
    if not isinstance(raw, Mapping):
        raise ServeError(
            f"service {service}: x-sidecar must be a mapping, got {type(raw).__name__}"
        )
    data = dict(raw)
    data.pop("push", None)  # not a serving setting: `push_target` reads it
    if not data and "push" in raw:
        return None  # x-sidecar with `push` alone: pushed after each build, not served
    if svc.get("healthcheck") and not (svc["healthcheck"] or {}).get("disable"):
        health = dict(data.get("health") or {})
        health.setdefault("type", "docker")
        data["health"] = health
    try:
        return ServeSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'x-sidecar'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ServeError(f"service {service}: invalid x-sidecar: {problems}") from None


def push_target(service: str, svc: Mapping[str, Any]) -> str | None:
    """`x-sidecar: {push: <registry>/<repository>[:tag]}`: where each good build of the
    service is pushed (the blue/green seed's build, tag, push), None when nowhere. Raises
    ServeError for what is not a repository reference (a digest cannot be pushed to)."""
    raw: Any = svc.get("x-sidecar")
    if not isinstance(raw, Mapping) or raw.get("push") in (None, ""):
        return None
    target = raw["push"]
    if not isinstance(target, str) or not _PUSH.fullmatch(target) or "@" in target:
        raise ServeError(
            f"service {service}: invalid x-sidecar: push: {str(target)[:80]!r} is not a "
            "repository to push to (registry/repository[:tag])"
        )
    return target


def declared_replicas(spec: ServeSpec, svc: Mapping[str, Any]) -> int:
    if spec.replicas is not None:
        return spec.replicas
    deploy = svc.get("deploy") or {}
    if deploy.get("replicas") is not None:
        return int(deploy["replicas"])
    if svc.get("scale") is not None:
        return int(svc["scale"])
    return 1
