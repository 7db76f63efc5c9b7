"""Executes rollouts and scale changes of served services: start new instances through
compose, wait until healthy, join them to the rotation, then retire old ones after the proxy
has let go of them. Runs in a worker thread; all decisions come from `planner`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from sidecar.adapters.compose import Compose
from sidecar.adapters.health import wait_healthy
from sidecar.core.model import ServiceSpec
from sidecar.core.planner import plan_rollout, plan_scale
from sidecar.core.serving import ServeSpec
from sidecar.core.types import DeployResult, Instance
from sidecar.runtime.rotation import Rotation

EventSink = Callable[..., None]
_CANCELLED = "cancelled: the sidecar is stopping"


class Deployer:
    def __init__(
        self,
        compose: Compose,
        rotation: Rotation,
        events: EventSink,
        cancel: threading.Event,
        url_mode: str = "network",
        network: str | None = None,
    ) -> None:
        self.compose = compose
        self.rotation = rotation
        self.events = events
        self.cancel = cancel
        self.url_mode = url_mode
        self.network = network
        # service -> instance name a `destroy` command asked to go first (shared with Control)
        self.retire_first: dict[str, str] = {}

    # --- addressing ----------------------------------------------------------------------
    def target(self, inst: Instance, spec: ServeSpec) -> tuple[str, tuple[str, int]] | None:
        """The URL the proxy uses for an instance, and where the health probe connects."""
        if self.url_mode == "host":
            port = inst.host_ports.get(spec.port)
            return (f"http://127.0.0.1:{port}", ("127.0.0.1", port)) if port else None
        network = self.network or f"{self.compose.project_name}_default"
        ip = inst.address(network)
        return (f"http://{ip}:{spec.port}", (ip, spec.port)) if ip else None

    # --- entry points --------------------------------------------------------------------
    def rollout(self, svc: ServiceSpec) -> DeployResult:
        """Replace every running instance with one of the current image and definition.

        Start-first batches are pipelined: once a batch's new instances serve, its old ones
        leave the rotation and drain while the next batch starts; they are stopped when their
        drain is over, and the rollout is done when the last one is."""
        spec = self._prepare(svc)
        draining: list[_Drain] = []
        ok, detail, started = self._batches(svc, spec, draining)
        retired = sum(self._finish(svc, d) for d in draining)
        if ok:
            detail = f"rolled out {started} new, retired {retired}"
        return DeployResult(ok, detail, started, retired)

    def _batches(
        self, svc: ServiceSpec, spec: ServeSpec, draining: list[_Drain]
    ) -> tuple[bool, str, int]:
        running = self._running(svc)
        started = 0
        for n, batch in enumerate(
            plan_rollout([i.id for i in running], svc.replicas, spec.rollout.parallelism)
        ):
            if n and spec.rollout.delay and self.cancel.wait(spec.rollout.delay):
                return False, _CANCELLED, started
            if spec.rollout.order == "stop-first":
                self._finish(svc, self._unroute(svc, list(batch.retire), spec))
            ok, count = self._start(svc, batch.start, spec)
            started += count
            if self.cancel.is_set():
                return False, _CANCELLED, started
            if not ok:
                if spec.rollout.failure_action == "pause":
                    return (
                        False,
                        "rollout paused: a new instance failed its health check; the old "
                        "instances keep serving",
                        started,
                    )
                continue
            if spec.rollout.order == "start-first":
                draining.append(self._unroute(svc, list(batch.retire), spec))
        return True, "", started

    def converge(self, svc: ServiceSpec) -> DeployResult:
        """Reach the declared replica count and a rotation of exactly the healthy running
        instances, replacing nothing that serves. Used at start-up, after Docker events,
        after hand-made changes (`docker rm -f`, `compose up --scale`) and periodically."""
        spec = self._prepare(svc)
        instances = self.compose.instances(svc.name)
        running = self._running(svc, instances)
        paused = [i.id for i in instances if i.state == "paused"]  # out of rotation, kept
        members = self.rotation.members(svc.name)
        for cid in set(members) - {i.id for i in running}:
            self.rotation.remove(svc.name, cid, state="gone")
        serving = [i.id for i in running if i.id in members]
        unproven = [i for i in running if i.id not in members]
        never_served = []
        for inst in unproven:  # oldest first: admit what is needed, drop the rest
            if len(serving) + len(paused) < svc.replicas and self._admit(svc, inst, spec):
                serving.append(inst.id)
            elif len(serving) + len(paused) >= svc.replicas:
                never_served.append(inst.id)
        if never_served:
            self.rotation.expect_exit(never_served)
            self.compose.stop_remove(never_served)  # e.g. `compose up --scale` by hand
        named = self.retire_first.pop(svc.name, None)
        first = [i.id for i in running if i.name == named and i.id in serving]
        serving = [c for c in serving if c not in first] + first  # plan_scale retires the last
        batch = plan_scale(paused + serving, svc.replicas)
        ok, started = self._start(svc, batch.start, spec) if batch.start else (True, 0)
        retired = self._retire(svc, [c for c in batch.retire if c not in paused], spec)
        changed = bool(started or retired or never_served or set(members) ^ set(serving))
        detail = f"{len(self.rotation.members(svc.name))}/{svc.replicas} serving"
        return DeployResult(ok, detail, started, retired + len(never_served), changed)

    def unserve(self, service: str) -> None:
        self.rotation.drop(service)

    # --- steps ---------------------------------------------------------------------------
    def _prepare(self, svc: ServiceSpec) -> ServeSpec:
        assert svc.serve is not None
        serve = svc.serve
        self.rotation.configure(
            svc.name, serve.router_rule(svc.name), serve.entrypoints, retry=serve.retry
        )
        return svc.serve

    def _running(self, svc: ServiceSpec, instances: list[Instance] | None = None) -> list[Instance]:
        instances = self.compose.instances(svc.name) if instances is None else instances
        dead = [i.id for i in instances if i.state not in ("running", "paused")]
        if dead:  # exited leftovers would be restarted by `compose up --scale` instead of new ones
            self.rotation.expect_exit(dead)
            self.compose.stop_remove(dead, timeout=0)
        # an instance that got a fatal kill/stop is on its way out even while it still runs:
        # never admitted, not counted, so its replacement starts at once
        return [i for i in instances if i.state == "running" and not self.rotation.is_leaving(i.id)]

    def _start(self, svc: ServiceSpec, count: int, spec: ServeSpec) -> tuple[bool, int]:
        """Start `count` new instances; join the healthy ones. (all healthy?, joined)."""
        if count <= 0 or self.cancel.is_set():
            return not self.cancel.is_set(), 0
        before = {i.id for i in self.compose.instances(svc.name)}
        result = self.compose.scale(svc.name, len(before) + count)
        new = [i for i in self.compose.instances(svc.name) if i.id not in before]
        if not result.ok and not new:
            self.events("instance-start-failed", svc.name, error=result.tail)
            return False, 0
        joined = sum(self._admit(svc, inst, spec) for inst in new)
        # No wait for the proxy here: old instances leave the rotation only now, and stay up
        # `proxy_settle + drain` longer, so every configuration the proxy may apply meanwhile
        # (new ones in, old ones out, or both) holds only instances that answer.
        if spec.rollout.monitor and joined and not self.cancel.wait(spec.rollout.monitor):
            alive = {i.id for i in self.compose.instances(svc.name) if i.state == "running"}
            for inst in new:
                if inst.id in self.rotation.members(svc.name) and inst.id not in alive:
                    self.rotation.remove(svc.name, inst.id, state="gone")
                    self.events(
                        "instance-died",
                        svc.name,
                        instance=inst.name,
                        error=f"exited within the {spec.rollout.monitor:g}s monitor window",
                        logs=self.compose.logs_tail(inst.id),
                    )
                    joined -= 1
        return joined == len(new) == count, joined

    def _admit(self, svc: ServiceSpec, inst: Instance, spec: ServeSpec) -> bool:
        """Health-check one instance and join it to the rotation, or remove it."""
        target = self.target(inst, spec)
        self.rotation.note(svc.name, inst.id, inst.name, "starting", target[0] if target else "")
        reason: str | None
        if target is None:
            reason = f"no address on the proxy network (url_mode={self.url_mode})"
        else:
            reason = wait_healthy(
                target[1], spec.health, lambda: self.compose.instance(inst.id), self.cancel
            )
        if reason is None and target is not None and not self.cancel.is_set():
            self.rotation.add(svc.name, inst.id, inst.name, target[0])
            return True
        if self.cancel.is_set():
            # stopping: an instance that never served goes (nobody would route to it, and a
            # `compose down` that listed the containers before it would leave it behind)
            logger.info("{}: stopping: removing new instance {}", svc.name, inst.name)
            self._discard(svc, inst)
            return False
        logs = self.compose.logs_tail(inst.id)
        logger.error(
            "{}: new instance {} failed: {}; removing it\n{}", svc.name, inst.name, reason, logs
        )
        self.events("instance-unhealthy", svc.name, instance=inst.name, error=reason, logs=logs)
        self._discard(svc, inst)
        return False

    def _discard(self, svc: ServiceSpec, inst: Instance) -> None:
        self.rotation.expect_exit([inst.id])
        self.compose.stop_remove([inst.id], timeout=0)
        self.rotation.note(svc.name, inst.id, inst.name, "gone")

    def _retire(self, svc: ServiceSpec, ids: list[str], spec: ServeSpec) -> int:
        """Take instances out of the rotation, wait for the proxy to let go, stop them."""
        return self._finish(svc, self._unroute(svc, ids, spec)) if ids else 0

    def _unroute(self, svc: ServiceSpec, ids: list[str], spec: ServeSpec) -> _Drain:
        """Take instances out of the rotation; they keep running until the drain is over."""
        members = self.rotation.members(svc.name)
        routes = {cid: members[cid] for cid in ids if self.rotation.remove(svc.name, cid)}
        wait = spec.rollout.proxy_settle + spec.rollout.drain if routes else 0.0
        if routes:
            logger.info(
                "{}: retiring {} instance(s): out of the rotation, draining {:g}s",
                svc.name,
                len(routes),
                wait,
            )
        return _Drain(ids, routes, time.monotonic() + wait)

    def _finish(self, svc: ServiceSpec, drain: _Drain) -> int:
        """Stop and remove drained instances once their drain is over."""
        if not drain.ids:
            return 0
        if drain.routes and self.cancel.wait(max(0.0, drain.until - time.monotonic())):
            # shutting down mid-drain: the proxy may still send to them, so they stay
            for cid, url in drain.routes.items():
                self.rotation.add(svc.name, cid, cid[:12], url)
            return 0
        self.rotation.expect_exit(drain.ids)
        self.compose.stop_remove(drain.ids)
        for cid in drain.ids:
            self.rotation.note(svc.name, cid, "", "gone")
        return len(drain.ids)


@dataclass(frozen=True)
class _Drain:
    """Instances out of the rotation, running until `until` (monotonic) for the proxy to let
    go of them and their requests to finish."""

    ids: list[str]
    routes: dict[str, str]  # the ones that were serving: container id -> URL
    until: float
