"""What a finished job means: which build fields are recorded, whether its snapshot becomes
the committed state, which events are written. Pure: the reactor executes `Outcome`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sidecar.core.planner import Kind
from sidecar.core.types import JobDone

Fields = dict[str, str]


@dataclass(frozen=True)
class Outcome:
    build_fields: Fields | None = None  # the service's last_build_* fields, if it built
    commit: bool = False  # the build's snapshot becomes the last good state
    events: list[tuple[str, Fields]] = field(default_factory=list)
    error: str = ""  # a failure's log text ("build failed", with the output tail)


def job_outcome(done: JobDone, stopping: bool, known: bool) -> Outcome:
    """`known`: the service is still in the project (a removed one records nothing)."""
    if done.kind is Kind.SYNC:
        return _sync_outcome(done, known)
    quiet = done.quiet and done.ok and not (done.deploy and done.deploy.changed)
    events: list[tuple[str, Fields]] = []
    outcome = Outcome()
    if known and not quiet:
        outcome = _recorded(done, stopping)
        events += outcome.events
    result = "ok" if done.ok else "failed"
    if not done.quiet:
        events.append(("job-finished", {"job": done.kind.value, "result": result}))
    elif not quiet:  # an event-driven or periodic converge repaired something
        detail = done.deploy.tail[-300:] if done.deploy else ""
        events.append(("converged", {"reason": done.reason, "result": result, "detail": detail}))
    return Outcome(outcome.build_fields, outcome.commit, events, outcome.error)


def _recorded(done: JobDone, stopping: bool) -> Outcome:
    failed_step = done.build if done.build and not done.build.ok else done.deploy
    fields = None
    if done.build is not None:
        cancelled = done.build.cancelled or (done.build.ok and stopping)
        fields = {
            "last_build_at": f"{done.started:.3f}",
            "last_build_duration": f"{done.build.duration:.3f}",
            "last_build_result": "ok" if done.ok else ("cancelled" if cancelled else "failed"),
            "last_build_reason": done.reason,
            "last_build_error": "" if done.ok or failed_step is None else failed_step.tail,
        }
    if done.ok:
        assert done.deploy is not None
        events: list[tuple[str, Fields]] = []
        built = done.kind is Kind.BUILD and done.build is not None
        if built:
            assert done.build is not None
            events.append(("build-succeeded", {"seconds": f"{done.build.duration:.3f}"}))
        if done.kind is Kind.PULL and done.build is not None:
            changed = done.deploy.changed
            pulled = {"seconds": f"{done.build.duration:.3f}", "changed": "1" if changed else "0"}
            events.append(("pulled", pulled))
            if not changed:  # the registry had what runs: no rollout, no version
                return Outcome(fields, False, events)
        deployed = {"seconds": f"{done.deploy.duration:.3f}", "detail": done.deploy.tail[-300:]}
        events.append(("deployed", deployed))
        return Outcome(fields, built, events)
    build_failed = done.build is not None and not done.build.ok
    stage = ("pull" if done.kind is Kind.PULL else "build") if build_failed else "deploy"
    result = "cancelled" if stopping else "failed"
    tail = failed_step.tail if failed_step else "cancelled before deploying"
    failure = {"error": tail}
    if failed_step is not None:
        failure["seconds"] = f"{failed_step.duration:.3f}"
    return Outcome(fields, False, [(f"{stage}-{result}", failure)], f"{stage} {result}")


def _sync_outcome(done: JobDone, known: bool) -> Outcome:
    """A develop.watch sync wrote its own events (sync-started, synced, exec-finished...);
    what is left is the status fields and, when it did anything, job-finished."""
    sync = done.sync
    if sync is None:
        return Outcome(error="" if done.ok else "sync failed")
    fields = dict(sync.fields) if known and sync.fields else None
    events: list[tuple[str, Fields]] = []
    if sync.changed:
        events.append(("job-finished", {"job": "sync", "result": "ok" if sync.ok else "failed"}))
    elif not sync.ok:  # it failed before reaching any container (Docker away, say)
        events.append(("sync-failed", {"error": sync.detail}))
    return Outcome(fields, False, events, "" if sync.ok else f"sync failed: {sync.detail}")
