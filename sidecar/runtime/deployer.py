"""Executes rollouts and scale changes of served services: start new instances through
compose, wait until healthy, join them to the rotation, then retire old ones after the proxy
has let go of them. Runs in a worker thread.

A thin executor: what to do comes from `sidecar.core.converge` (converges, in phases around
the health probes) and `sidecar.core.rollout_steps` (rollouts, one step at a time); this
module only carries steps out and reports what it saw."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from loguru import logger

from sidecar.adapters.health import wait_healthy
from sidecar.core.converge import (
    Admission,
    ConvergePlan,
    Verdict,
    admissible,
    admission_verdict,
    converge_changed,
    leftovers,
    next_admission,
    plan_converge,
    plan_converge_scale,
)
from sidecar.core.model import ServiceSpec
from sidecar.core.ports import DockerPort, Prober
from sidecar.core.rollout_steps import (
    Done,
    Drain,
    Leave,
    Outcome,
    Restore,
    Retire,
    RolloutState,
    Start,
    Step,
    Wait,
    begin_retire,
    begin_rollout,
    monitor_casualties,
    next_step,
    start_ok,
)
from sidecar.core.serving import ServeSpec
from sidecar.core.types import DeployResult, Instance
from sidecar.runtime.rotation import Rotation

EventSink = Callable[..., None]
# how long a restart waits for its start event (the Docker events stream may be down)
RESTART_EVENT_WAIT = 3.0


class Deployer:
    def __init__(
        self,
        compose: DockerPort,
        rotation: Rotation,
        events: EventSink,
        cancel: threading.Event,
        url_mode: str = "network",
        network: str | None = None,
        prober: Prober | None = None,
    ) -> None:
        self.prober = prober or wait_healthy
        self.compose = compose
        self.rotation = rotation
        self.events = events
        self.cancel = cancel
        self.url_mode = url_mode
        self.network = network
        # service -> instance name a `destroy` command asked to go first (shared with Control)
        self.retire_first: dict[str, str] = {}
        # run on each new instance before its health probe (develop.watch: the synced files);
        # returns why the instance must not join, or None
        self.prepare: Callable[[ServiceSpec, Instance], str | None] | None = None

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
        """Replace every running instance with one of the current image and definition, in
        the steps `rollout_steps.next_step` decides."""
        spec = self._prepare(svc)
        old = [i.id for i in self._running(svc)]
        done = self._run(svc, spec, *begin_rollout(old, svc.replicas, spec.rollout))
        return DeployResult(done.ok, done.detail, done.started, done.retired)

    def converge(self, svc: ServiceSpec) -> DeployResult:
        """Reach the declared replica count and a rotation of exactly the healthy running
        instances, replacing nothing that serves. Used at start-up, after Docker events,
        after hand-made changes (`docker rm -f`, `compose up --scale`) and periodically."""
        spec = self._prepare(svc)
        instances = self.compose.instances(svc.name)
        self._remove_now(leftovers(instances))
        leaving = self._leaving(instances)
        plan = plan_converge(svc.replicas, instances, self.rotation.members(svc.name), leaving)
        for cid in plan.unroute:
            self.rotation.remove(svc.name, cid, state="gone")
        admission = self._admit_candidates(svc, plan, instances, spec)
        self.rotation.expect_exit(list(admission.surplus))
        self.compose.stop_remove(list(admission.surplus))  # e.g. `compose up --scale` by hand
        # read only now: a `destroy` that came while candidates were probed counts too
        named = self.retire_first.pop(svc.name, None)
        scale = plan_converge_scale(plan, admission.admitted, named)
        ok, started = self._start(svc, scale.start, spec) if scale.start else (True, 0)
        retired = self._run(svc, spec, *begin_retire(scale.retire)).retired
        changed = converge_changed(plan, scale, admission.surplus, started, retired)
        detail = f"{len(self.rotation.members(svc.name))}/{svc.replicas} serving"
        return DeployResult(ok, detail, started, retired + len(admission.surplus), changed)

    def restart(self, svc: ServiceSpec) -> DeployResult:
        """Restart every serving instance in place, `rollout.parallelism` at a time: out of
        the rotation, drained, restarted (the service's stop signal and grace), probed and
        joined again, so the others carry the traffic meanwhile. A batch that does not come
        back healthy stops the restart (its instances are replaced by the next converge)."""
        spec = self._prepare(svc)
        ids = [i.id for i in self._running(svc)]
        step = max(1, spec.rollout.parallelism)
        done = 0
        for n in range(0, len(ids), step):
            batch = ids[n : n + step]
            drain = self._unroute(svc, batch, spec)
            if self.cancel.wait(max(0.0, drain.until - time.monotonic())):
                for cid, url in drain.routes.items():
                    self.rotation.add(svc.name, cid, cid[:12], url)
                return DeployResult(False, "cancelled: the sidecar is stopping", done)
            self.rotation.expect_exit(batch)
            for cid in batch:
                self._restart_one(cid, svc.stop_grace_s)
            back = [self.compose.instance(cid) for cid in batch]
            joined = sum(self._admit(svc, inst, spec) for inst in back if inst is not None)
            done += joined
            if joined < len(batch):
                return DeployResult(
                    False, f"restart stopped: {len(batch) - joined} instance(s) unhealthy", done
                )
        return DeployResult(True, f"restarted {done}", done)

    def _restart_one(self, cid: str, grace: float) -> None:
        """`docker restart`, then wait (briefly) until the events thread has seen the start:
        its kill and die must not take the instance out again after it rejoined."""
        seen = self.rotation.starts(cid)
        self.compose.restart_instance(cid, grace)
        deadline = time.monotonic() + RESTART_EVENT_WAIT
        while self.rotation.starts(cid) == seen and time.monotonic() < deadline:
            if self.cancel.wait(0.01):
                return

    def unserve(self, service: str) -> None:
        self.rotation.drop(service)

    # --- plans ---------------------------------------------------------------------------
    def _run(self, svc: ServiceSpec, spec: ServeSpec, state: RolloutState, step: Step) -> Done:
        """Carry out steps until the plan says it is done."""
        drains: dict[int, _Drain] = {}
        while not isinstance(step, Done):
            state, step = next_step(state, self._do(svc, spec, step, drains))
        return step

    def _do(
        self, svc: ServiceSpec, spec: ServeSpec, step: Step, drains: dict[int, _Drain]
    ) -> Outcome:
        match step:
            case Wait(seconds):
                return Outcome(cancelled=self.cancel.wait(seconds))
            case Start(count):
                ok, joined = self._start(svc, count, spec)
                return Outcome(cancelled=self.cancel.is_set(), ok=ok, count=joined)
            case Leave(batch, ids):
                drains[batch] = self._unroute(svc, ids, spec)
                return Outcome(count=len(drains[batch].routes))
            case Drain(batch):
                left = max(0.0, drains[batch].until - time.monotonic())
                return Outcome(cancelled=self.cancel.wait(left))
            case Restore(batch):
                for cid, url in drains[batch].routes.items():
                    self.rotation.add(svc.name, cid, cid[:12], url)
                return Outcome()
            case Retire(_, ids):
                self._stop(svc, ids)
                return Outcome()
        raise ValueError(f"not an executable step: {step!r}")

    def _admit_candidates(
        self, svc: ServiceSpec, plan: ConvergePlan, instances: list[Instance], spec: ServeSpec
    ) -> Admission:
        by_id = {i.id: i for i in instances}
        probed: dict[str, bool] = {}
        while (admission := next_admission(plan, probed)).probe is not None:
            probed[admission.probe] = self._admit(svc, by_id[admission.probe], spec)
        return admission

    # --- steps ---------------------------------------------------------------------------
    def _prepare(self, svc: ServiceSpec) -> ServeSpec:
        assert svc.serve is not None
        serve = svc.serve
        self.rotation.configure(
            svc.name, serve.router_rule(svc.name), serve.entrypoints, retry=serve.retry
        )
        return svc.serve

    def _running(self, svc: ServiceSpec) -> list[Instance]:
        instances = self.compose.instances(svc.name)
        self._remove_now(leftovers(instances))
        return admissible(instances, self._leaving(instances))

    def _leaving(self, instances: list[Instance]) -> set[str]:
        return {i.id for i in instances if self.rotation.is_leaving(i.id)}

    def _remove_now(self, ids: list[str]) -> None:
        """Containers that never serve again: no stop grace."""
        self.rotation.expect_exit(ids)
        self.compose.stop_remove(ids, timeout=0)

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
        # No wait for the proxy here: old instances leave the rotation only after this, and
        # stay up `proxy_settle + drain` longer, so every configuration the proxy may apply
        # meanwhile (new ones in, old ones out, or both) holds only instances that answer.
        if spec.rollout.monitor and joined and not self.cancel.wait(spec.rollout.monitor):
            joined -= self._monitor(svc, new, spec)
        return start_ok(count, len(new), joined), joined

    def _monitor(self, svc: ServiceSpec, new: list[Instance], spec: ServeSpec) -> int:
        """After the monitor window: take out new instances that died in it. How many."""
        alive = {i.id for i in self.compose.instances(svc.name) if i.state == "running"}
        died = monitor_casualties([i.id for i in new], self.rotation.members(svc.name), alive)
        for inst in (i for i in new if i.id in died):
            self.rotation.remove(svc.name, inst.id, state="gone")
            self.events(
                "instance-died",
                svc.name,
                instance=inst.name,
                error=f"exited within the {spec.rollout.monitor:g}s monitor window",
                logs=self.compose.logs_tail(inst.id),
            )
        return len(died)

    def _admit(self, svc: ServiceSpec, inst: Instance, spec: ServeSpec) -> bool:
        """Health-check one instance and join it to the rotation, or remove it."""
        target = self.target(inst, spec)
        url = target[0] if target else ""
        self.rotation.note(svc.name, inst.id, inst.name, "starting", url)
        reason = self.prepare(svc, inst) if self.prepare else None
        if reason is None:
            reason = self._probe(inst, target, spec)
        verdict = admission_verdict(reason, self.cancel.is_set())
        if verdict is Verdict.JOIN:
            self.rotation.add(svc.name, inst.id, inst.name, url)
            return True
        if verdict is Verdict.STOPPING:
            logger.info("{}: stopping: removing new instance {}", svc.name, inst.name)
        else:
            logs = self.compose.logs_tail(inst.id)
            logger.error(
                "{}: new instance {} failed: {}; removing it\n{}", svc.name, inst.name, reason, logs
            )
            self.events("instance-unhealthy", svc.name, instance=inst.name, error=reason, logs=logs)
        self._remove_now([inst.id])
        self.rotation.note(svc.name, inst.id, inst.name, "gone")
        return False

    def _probe(
        self, inst: Instance, target: tuple[str, tuple[str, int]] | None, spec: ServeSpec
    ) -> str | None:
        """None when healthy, else why not."""
        if target is None:
            return f"no address on the proxy network (url_mode={self.url_mode})"
        return self.prober(
            target[1], spec.health, lambda: self.compose.instance(inst.id), self.cancel
        )

    def _unroute(self, svc: ServiceSpec, ids: Sequence[str], spec: ServeSpec) -> _Drain:
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
        return _Drain(routes, time.monotonic() + wait)

    def _stop(self, svc: ServiceSpec, ids: Sequence[str]) -> None:
        """Stop and remove drained instances (with the stop grace: requests may still run)."""
        self.rotation.expect_exit(list(ids))
        self.compose.stop_remove(list(ids))
        for cid in ids:
            self.rotation.note(svc.name, cid, "", "gone")


@dataclass(frozen=True)
class _Drain:
    """Instances out of the rotation, running until `until` (monotonic) for the proxy to let
    go of them and their requests to finish."""

    routes: dict[str, str]  # the ones that were serving: container id -> URL
    until: float
