"""From the daemon's events to metrics (sidecar.adapters.metrics.updates_for), a table;
and what a scrape shows."""

from __future__ import annotations

import pytest

from sidecar.adapters.metrics import COUNTERS, HISTOGRAMS, Metrics, Update, updates_for
from sidecar.core.types import Snapshot


@pytest.mark.parametrize(
    ("kind", "service", "fields", "updates"),
    [
        (
            "build-succeeded",
            "web",
            {"seconds": "0.250"},
            [Update("builds", ("web", "ok")), Update("build_seconds", ("web",), 0.25)],
        ),
        ("build-failed", "web", {"error": "boom"}, [Update("builds", ("web", "failed"))]),
        ("build-cancelled", "web", {}, [Update("builds", ("web", "cancelled"))]),
        (
            "synced",
            "web",
            {"files": "3", "seconds": "0.04"},
            [Update("syncs", ("web", "ok")), Update("sync_seconds", ("web",), 0.04)],
        ),
        # a new instance catching up: a sync without a duration
        ("synced", "web", {"files": "3", "reason": "new"}, [Update("syncs", ("web", "ok"))]),
        ("sync-failed", "web", {"error": "x"}, [Update("syncs", ("web", "failed"))]),
        (
            "deployed",
            "web",
            {"seconds": "2.5", "detail": "..."},
            [Update("rollouts", ("web", "ok")), Update("rollout_seconds", ("web",), 2.5)],
        ),
        # the start-up `up` of the plain services: one event naming them all
        (
            "deployed",
            "a,b",
            {"seconds": "1"},
            [
                Update("rollouts", ("a", "ok")),
                Update("rollouts", ("b", "ok")),
                Update("rollout_seconds", ("a",), 1.0),
                Update("rollout_seconds", ("b",), 1.0),
            ],
        ),
        ("deploy-failed", "web", {"error": "x"}, [Update("rollouts", ("web", "failed"))]),
        ("deploy-cancelled", "web", {}, [Update("rollouts", ("web", "cancelled"))]),
        (
            "restarted",
            "web",
            {"instances": "2", "seconds": "1.5"},
            [Update("restarts", ("web", "ok")), Update("restart_seconds", ("web",), 1.5)],
        ),
        ("restart-failed", "web", {}, [Update("restarts", ("web", "failed"))]),
        ("pulled", "web", {"changed": "1"}, [Update("pulls", ("web", "new"))]),
        ("pulled", "web", {"changed": "0"}, [Update("pulls", ("web", "same"))]),
        ("pull-failed", "web", {"error": "x"}, [Update("pulls", ("web", "failed"))]),
        ("git-updated", "", {"commit": "c"}, [Update("git_updates", ("updated",))]),
        ("git-refused", "", {}, [Update("git_updates", ("refused",))]),
        (
            "job-finished",
            "web",
            {"job": "rollout", "result": "ok"},
            [Update("jobs", ("web", "rollout", "ok"))],
        ),
        ("converged", "web", {"result": "ok"}, [Update("repairs", ("web", "ok"))]),
        ("instance-died", "web", {}, [Update("instance_failures", ("web", "instance-died"))]),
        (
            "instance-unhealthy",
            "web",
            {"error": "refused"},
            [Update("instance_failures", ("web", "instance-unhealthy"))],
        ),
        ("service-failed", "web", {}, [Update("instance_failures", ("web", "service-failed"))]),
        (
            "command-ok",
            "web",
            {"action": "scale", "command": "c1"},
            [Update("commands", ("scale", "ok"))],
        ),
        (
            "command-error",
            "",
            {"action": "", "command": "1-0"},
            [Update("commands", ("unknown", "error"))],
        ),
        ("reactor-error", "", {"error": "x"}, [Update("reactor_errors")]),
        # a duration that is not one is left out, the count stays
        ("build-succeeded", "web", {"seconds": "soon"}, [Update("builds", ("web", "ok"))]),
        ("build-succeeded", "web", {"seconds": "-1"}, [Update("builds", ("web", "ok"))]),
        # events that are no metric
        ("ready", "", {"watches": "3"}, []),
        ("build-started", "web", {"reason": "x"}, []),
        ("scanned", "", {"files": "10"}, []),
    ],
)
def test_updates_for(
    kind: str, service: str, fields: dict[str, str], updates: list[Update]
) -> None:
    assert updates_for(kind, service, fields) == updates


def test_every_update_names_a_metric_with_its_labels() -> None:
    samples = [
        ("build-succeeded", {"seconds": "1"}),
        ("synced", {"seconds": "1"}),
        ("deployed", {"seconds": "1"}),
        ("restarted", {"seconds": "1"}),
        ("job-finished", {"job": "build", "result": "ok"}),
        ("converged", {"result": "ok"}),
        ("instance-died", {}),
        ("command-ok", {"action": "scale"}),
        ("reactor-error", {}),
    ]
    for kind, fields in samples:
        for update in updates_for(kind, "web", fields):
            if update.metric in COUNTERS:
                assert len(update.labels) == len(COUNTERS[update.metric][2])
            else:
                assert len(update.labels) == len(HISTOGRAMS[update.metric][2])


def snapshot() -> Snapshot:
    return Snapshot(
        instances={"web": {"serving": 2, "draining": 1}},
        rotation={"web": 2},
        redis_up=True,
        docker_up=False,
        threads={"commands": "running", "http": "restarting: OSError: in use"},
        jobs_waiting=3,
        jobs_running=1,
    )


def test_a_scrape_shows_counters_histograms_and_gauges() -> None:
    m = Metrics(snapshot)
    m.on_event("build-succeeded", "web", {"seconds": "0.3"})
    m.on_event("build-failed", "web", {})
    m.on_event("command-ok", "web", {"action": "scale"})
    m.docker_lag(0.004)
    text = m.exposition().decode()
    for line in [
        'sidecar_builds_total{result="ok",service="web"} 1.0',
        'sidecar_builds_total{result="failed",service="web"} 1.0',
        'sidecar_build_duration_seconds_count{service="web"} 1.0',
        'sidecar_build_duration_seconds_bucket{le="0.5",service="web"} 1.0',
        'sidecar_commands_total{action="scale",result="ok"} 1.0',
        "sidecar_docker_event_lag_seconds_count 1.0",
        'sidecar_instances{service="web",state="serving"} 2.0',
        'sidecar_instances{service="web",state="draining"} 1.0',
        'sidecar_rotation_size{service="web"} 2.0',
        "sidecar_redis_up 1.0",
        "sidecar_docker_up 0.0",
        'sidecar_thread_alive{thread="commands"} 1.0',
        'sidecar_thread_alive{thread="http"} 0.0',
        "sidecar_job_queue_depth 3.0",
        "sidecar_jobs_running 1.0",
    ]:
        assert line in text, line


def test_a_broken_event_never_raises_into_the_daemon() -> None:
    m = Metrics()
    m.on_event("deployed", "web", {"seconds": object()})  # str() of anything works
    m.on_event("job-finished", "web", {"job": None, "result": 3})  # odd labels: still counted
    assert b"sidecar_jobs_total" in m.exposition()


def test_registries_are_separate() -> None:
    a, b = Metrics(), Metrics()
    a.on_event("build-failed", "web", {})
    assert b'sidecar_builds_total{result="failed",service="web"}' not in b.exposition()
