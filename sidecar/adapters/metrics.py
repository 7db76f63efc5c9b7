"""Prometheus metrics (`GET /metrics`), in a registry of our own (not the library's global
one: no process collector surprises, and tests make as many as they like).

Two sources:
- counters and histograms from the daemon's events: every `Daemon._event` goes through
  `Metrics.on_event`, which applies `updates_for(kind, service, fields)`, a pure mapping
  tested as a table; plus the Docker event lag, observed on the events thread;
- gauges read on each scrape from a `Snapshot` the daemon provides (instances, rotation,
  Redis and Docker up, threads, the job queue), by a custom collector."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from loguru import logger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from sidecar.core.types import Snapshot

# bucket edges in seconds, from what this project measures: a busybox build 0.25 s, a real
# one minutes; a sync a few ms to a second; a rollout 1-3 s per instance behind Traefik
BUILD_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
SYNC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEPLOY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# python name -> (exposed name, help, label names); counters get `_total` from the library
COUNTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "builds": (
        "sidecar_builds",
        "Builds finished, by result (ok/failed/cancelled).",
        ("service", "result"),
    ),
    "syncs": ("sidecar_syncs", "develop.watch syncs finished, by result.", ("service", "result")),
    "rollouts": (
        "sidecar_rollouts",
        "Deploys finished: rollouts of served services, recreates of plain ones.",
        ("service", "result"),
    ),
    "restarts": ("sidecar_restarts", "develop.watch restarts, by result.", ("service", "result")),
    "pulls": (
        "sidecar_pulls",
        "Pulls of image-only services, by result (new: rolled out; same: nothing to do).",
        ("service", "result"),
    ),
    "repairs": ("sidecar_repairs", "Converges that repaired something.", ("service", "result")),
    "jobs": ("sidecar_jobs", "Jobs finished, by kind and result.", ("service", "job", "result")),
    "instance_failures": (
        "sidecar_instance_failures",
        "Instances that failed: unhealthy, died, start-failed; service-failed crash loops.",
        ("service", "event"),
    ),
    "commands": (
        "sidecar_commands",
        "Commands answered, by action and result.",
        ("action", "result"),
    ),
    "reactor_errors": ("sidecar_reactor_errors", "Messages the reactor failed to handle.", ()),
    "hooks": (
        "sidecar_webhooks",
        "Webhook deliveries, by host and result (queued, published, ignored, duplicate, "
        "pong, unauthorized, invalid).",
        ("provider", "result"),
    ),
    "git_updates": (
        "sidecar_git_updates",
        "Looks at the git branch that moved the workspace or could not: updated, refused, failed.",
        ("result",),
    ),
}
_GIT = {"git-updated": "updated", "git-refused": "refused", "git-failed": "failed"}
HISTOGRAMS: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...]]] = {
    "build_seconds": (
        "sidecar_build_duration_seconds",
        "Duration of good builds.",
        ("service",),
        BUILD_BUCKETS,
    ),
    "sync_seconds": (
        "sidecar_sync_duration_seconds",
        "Duration of syncs.",
        ("service",),
        SYNC_BUCKETS,
    ),
    "rollout_seconds": (
        "sidecar_rollout_duration_seconds",
        "Duration of good deploys.",
        ("service",),
        DEPLOY_BUCKETS,
    ),
    "restart_seconds": (
        "sidecar_restart_duration_seconds",
        "Duration of restarts.",
        ("service",),
        DEPLOY_BUCKETS,
    ),
    "docker_lag": (
        "sidecar_docker_event_lag_seconds",
        "From a Docker event's time to the sidecar handling it (events thread).",
        (),
        LAG_BUCKETS,
    ),
}


@dataclass(frozen=True)
class Update:
    metric: str  # a key of COUNTERS (increment by `value`) or HISTOGRAMS (observe `value`)
    labels: tuple[str, ...] = ()
    value: float = 1.0


# event kind -> (counter, result) for the events that count one outcome of a service
_RESULTS: dict[str, tuple[str, str]] = {
    "build-succeeded": ("builds", "ok"),
    "build-failed": ("builds", "failed"),
    "build-cancelled": ("builds", "cancelled"),
    "synced": ("syncs", "ok"),
    "sync-failed": ("syncs", "failed"),
    "deployed": ("rollouts", "ok"),
    "deploy-failed": ("rollouts", "failed"),
    "deploy-cancelled": ("rollouts", "cancelled"),
    "restarted": ("restarts", "ok"),
    "restart-failed": ("restarts", "failed"),
    "pull-failed": ("pulls", "failed"),
}
# event kind -> histogram of its `seconds` field
_DURATIONS = {
    "build-succeeded": "build_seconds",
    "synced": "sync_seconds",
    "deployed": "rollout_seconds",
    "restarted": "restart_seconds",
}
_FAILURES = frozenset(
    {"instance-unhealthy", "instance-died", "instance-start-failed", "service-failed"}
)


def _seconds(value: object) -> float | None:
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def updates_for(kind: str, service: str, fields: Mapping[str, object]) -> list[Update]:
    """What one daemon event does to the metrics. `service` may name several services
    (`web,api`: a start-up `up` of the plain services), each counted."""
    services = [s for s in service.split(",") if s] or [""]
    out: list[Update] = []
    if kind in _RESULTS:
        counter, result = _RESULTS[kind]
        out += [Update(counter, (s, result)) for s in services]
        seconds = _seconds(fields.get("seconds", ""))
        if kind in _DURATIONS and seconds is not None:
            out += [Update(_DURATIONS[kind], (s,), seconds) for s in services]
    elif kind == "job-finished":
        job, result = str(fields.get("job", "")), str(fields.get("result", ""))
        out += [Update("jobs", (s, job, result)) for s in services]
    elif kind == "converged":
        out += [Update("repairs", (s, str(fields.get("result", "")))) for s in services]
    elif kind in _FAILURES:
        out += [Update("instance_failures", (s, kind)) for s in services]
    elif kind == "pulled":
        result = "new" if fields.get("changed") == "1" else "same"
        out += [Update("pulls", (s, result)) for s in services]
    elif kind in _GIT:
        out.append(Update("git_updates", (_GIT[kind],)))
    elif kind in ("command-ok", "command-error"):
        action = str(fields.get("action", "")) or "unknown"
        out.append(Update("commands", (action, "ok" if kind == "command-ok" else "error")))
    elif kind == "reactor-error":
        out.append(Update("reactor_errors"))
    return out


class Metrics:
    """The registry, fed by the daemon (any thread: the library's metrics are thread-safe)
    and read by `GET /metrics`."""

    def __init__(self, snapshot: Callable[[], Snapshot] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.counters = {
            key: Counter(name, text, labels, registry=self.registry)
            for key, (name, text, labels) in COUNTERS.items()
        }
        self.histograms = {
            key: Histogram(name, text, labels, registry=self.registry, buckets=buckets)
            for key, (name, text, labels, buckets) in HISTOGRAMS.items()
        }
        # set by the HTTP server: a client that hung up must bring it down again
        self.event_streams = Gauge(
            "sidecar_http_event_streams", "Event streams (SSE) open now.", registry=self.registry
        )
        if snapshot is not None:
            self.registry.register(SnapshotCollector(snapshot))

    def on_event(self, kind: str, service: str, fields: Mapping[str, object]) -> None:
        """Never raises: metrics must not cost the daemon an event."""
        try:
            for update in updates_for(kind, service, fields):
                self.apply(update)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.opt(exception=exc).warning("metrics: event {} not counted: {}", kind, exc)

    def apply(self, update: Update) -> None:
        if update.metric in self.counters:
            counter = self.counters[update.metric]
            (counter.labels(*update.labels) if update.labels else counter).inc(update.value)
        else:
            hist = self.histograms[update.metric]
            (hist.labels(*update.labels) if update.labels else hist).observe(update.value)

    def docker_lag(self, seconds: float) -> None:
        if seconds >= 0:
            self.histograms["docker_lag"].observe(seconds)

    def exposition(self) -> bytes:
        """The text format; blocking (the snapshot takes locks): run it off the event loop."""
        return generate_latest(self.registry)


class SnapshotCollector:
    """Gauges of what is, read from the daemon on every scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        instances = GaugeMetricFamily(
            "sidecar_instances",
            "Instances of served services, by state.",
            labels=["service", "state"],
        )
        for service, states in sorted(snap.instances.items()):
            for state, count in sorted(states.items()):
                instances.add_metric([service, state], count)
        yield instances
        rotation = GaugeMetricFamily(
            "sidecar_rotation_size", "URLs in the service's proxy rotation.", labels=["service"]
        )
        for service, size in sorted(snap.rotation.items()):
            rotation.add_metric([service], size)
        yield rotation
        yield GaugeMetricFamily(
            "sidecar_redis_up", "1 while the daemon reaches Redis.", value=int(snap.redis_up)
        )
        yield GaugeMetricFamily(
            "sidecar_docker_up",
            "1 while the Docker events stream is connected.",
            value=int(snap.docker_up),
        )
        threads = GaugeMetricFamily(
            "sidecar_thread_alive", "1 while the supervised thread runs.", labels=["thread"]
        )
        for name, state in sorted(snap.threads.items()):
            threads.add_metric([name], int(state == "running"))
        yield threads
        yield GaugeMetricFamily(
            "sidecar_job_queue_depth", "Jobs waiting to start.", value=snap.jobs_waiting
        )
        yield GaugeMetricFamily("sidecar_jobs_running", "Jobs running.", value=snap.jobs_running)
