"""Level-triggered repair: what Docker events do (at once on the events thread, then in
the reactor), crash-loop backoff, scheduled converges and the periodic resync. A component
of the reactor with its own state (crash history, timers); it reaches the reactor through
the same `Host` Protocol as `control`."""

from __future__ import annotations

import heapq
from collections.abc import Callable

from loguru import logger

from sidecar.core.events import Verdict, effect_of, verdict_of
from sidecar.core.planner import CrashLoop, Kind
from sidecar.core.ports import Clock
from sidecar.core.types import ContainerEvent, StreamState
from sidecar.runtime.control import Host
from sidecar.runtime.rotation import Rotation
from sidecar.settings import Settings

PERIODIC = "periodic resync"
DOCKER_EVENT = "docker event: "


class Healing:
    def __init__(
        self,
        host: Host,
        settings: Settings,
        clock: Clock,
        rotation: Rotation,
        post: Callable[[ContainerEvent | StreamState], None],
    ) -> None:
        self.h = host
        self.settings = settings
        self.clock = clock
        self.rotation = rotation
        self.post = post  # to the reactor's queue
        self.crashes = CrashLoop(
            settings.crash_backoff_base_s,
            settings.crash_backoff_max_s,
            settings.crash_window_s,
            settings.crash_max_failures,
        )
        # (due, seq, service, reason): converges scheduled for later (crash backoff)
        self._timers: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._next_resync = clock.monotonic() + settings.resync_interval_s
        self.docker_up = True  # the start-up just talked to it; the events stream says after
        self.on_lag: Callable[[float], None] = lambda _seconds: None  # the metrics' hook

    def next_due(self) -> float:
        """When `fire_timers` has something to do next (monotonic)."""
        return min(self._next_resync, self._timers[0][0]) if self._timers else self._next_resync

    def on_docker(self, msg: ContainerEvent | StreamState) -> None:
        """Runs on the events thread. Taking an instance out of the rotation happens right
        here (the rotation is thread-safe): milliseconds, not a trip through the loop."""
        if isinstance(msg, ContainerEvent):
            if msg.time_ns:
                self.on_lag(self.clock.time() - msg.time_ns / 1e9)
            effect = effect_of(msg)
            if effect.leaving:
                self.rotation.mark_leaving(msg.container, killed=effect.killed)
            if effect.back:
                self.rotation.mark_back(msg.container)
            if effect.leave_rotation:
                t0 = self.clock.monotonic()
                if self.rotation.remove(msg.service, msg.container, state=msg.action):
                    lag = (self.clock.time() * 1e9 - msg.time_ns) / 1e6 if msg.time_ns else -1
                    logger.info(
                        "{}: {} left the rotation on {} ({:.1f} ms after the event, "
                        "{:.1f} ms to publish)",
                        msg.service,
                        msg.name,
                        msg.action,
                        lag,
                        (self.clock.monotonic() - t0) * 1000,
                    )
                    # at once, from this thread: the dashboard sees it within milliseconds
                    docker_at = f"{msg.time_ns / 1e9:.6f}" if msg.time_ns else ""
                    self.h.event(
                        "instance-left",
                        msg.service,
                        instance=msg.name,
                        on=msg.action,
                        docker_at=docker_at,
                    )
            if effect.forget:
                self.rotation.forget_container(msg.container)
        self.post(msg)

    def container_event(self, ev: ContainerEvent) -> None:
        svc = self.h.project.services.get(ev.service)
        verdict = verdict_of(
            ev,
            served=svc is not None and svc.served,
            exit_expected=self.rotation.exit_expected(ev.container),
            failed=ev.service in self.crashes.failed,
        )
        if svc is None or verdict is Verdict.IGNORE:
            return
        if verdict is Verdict.CRASH:
            delay = self.crashes.record(svc.name, self.clock.monotonic())
            if delay is None:
                self._service_failed(svc.name, ev)
                return
            if delay > 0:
                self._schedule(
                    svc.name,
                    delay,
                    f"{DOCKER_EVENT}{ev.name} died (exit {ev.exit_code or '?'}); "
                    f"replacing after {delay:g}s backoff",
                )
                return
            if svc.name in self.crashes.failed:
                return
        what = f"{ev.action} {ev.status}".strip()
        self.h.jobs.request(svc.name, f"{DOCKER_EVENT}{what} of {ev.name}", Kind.CONVERGE, True)

    def _service_failed(self, name: str, ev: ContainerEvent) -> None:
        reason = (
            f"{len(self.crashes.deaths.get(name, []))} deaths within "
            f"{self.settings.crash_window_s:g}s (last: {ev.name}, exit {ev.exit_code})"
        )
        logger.error(
            "{} marked failed: {}; not replacing it until the next build, rollout or command",
            name,
            reason,
        )
        self.h.jobs.forget(name)  # queued replacements are off too
        self.h.safe(self.h.store.record_build, name, {"state": "failed", "failed_reason": reason})
        self.h.event("service-failed", name, error=reason)

    def stream_state(self, st: StreamState) -> None:
        self.docker_up = st.connected
        if not st.connected:
            self.h.event("docker-disconnected", error=st.detail)
            return
        if st.detail == "reconnected":
            self.h.event("docker-reconnected")
            self.resync("docker daemon reconnected", plain_too=True)

    def _schedule(self, service: str, delay: float, reason: str) -> None:
        self._seq += 1
        due = self.clock.monotonic() + delay
        heapq.heappush(self._timers, (due, self._seq, service, reason))

    def fire_timers(self, now: float) -> bool:
        fired = False
        while self._timers and self._timers[0][0] <= now:
            _, _, service, reason = heapq.heappop(self._timers)
            fired = True
            if service in self.h.project.services and service not in self.crashes.failed:
                self.h.jobs.request(service, reason, Kind.CONVERGE, quiet=True)
        if now >= self._next_resync:
            self._next_resync = now + self.settings.resync_interval_s
            self.resync(PERIODIC)
            fired = True
        return fired

    def resync(self, reason: str, plain_too: bool = False) -> None:
        """Level-triggered repair: converge every served service against what Docker says;
        after a daemon restart also bring plain services back up."""
        self.h.unpark_syncs()
        running: set[str] = set()
        if plain_too:
            running = self.h.safe_docker(self.h.compose.running_services, set())
        for svc in self.h.project.services.values():
            if svc.served and svc.name not in self.crashes.failed:
                self.h.jobs.request(svc.name, reason, Kind.CONVERGE, quiet=reason == PERIODIC)
            elif plain_too and not svc.served and svc.name not in running:
                self.h.jobs.request(svc.name, reason, Kind.UP)
