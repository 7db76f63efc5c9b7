"""Job execution, on worker threads: build, roll out, converge or recreate one service.
Only adapters are touched here; the outcome goes back to the reactor as a `JobDone`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from loguru import logger

from sidecar.core.model import ServiceSpec
from sidecar.core.planner import Digests, Kind
from sidecar.core.ports import Clock, DockerPort
from sidecar.core.syncing import sync_fields
from sidecar.core.types import CommandResult, JobDone, SyncReport
from sidecar.runtime.deployer import Deployer, EventSink
from sidecar.runtime.syncer import Syncer, SyncWork


class JobRunner:
    def __init__(
        self,
        compose: DockerPort,
        deployer: Deployer,
        report: Callable[[JobDone], None],
        cancel: threading.Event,
        build_timeout_s: float,
        clock: Clock,
        syncer: Syncer,
        events: EventSink,
        recreated: Callable[[list[str]], object] | None = None,
    ) -> None:
        self.events = events
        self.clock = clock
        self.syncer = syncer
        # told the addresses of a plain service's containers after compose recreated them
        # (adapters.neighbours.forget: no client waits for an ARP retry)
        self.recreated = recreated
        self.compose = compose
        self.deployer = deployer
        self.report = report
        self.cancel = cancel
        self.build_timeout_s = build_timeout_s

    def run(
        self,
        svc: ServiceSpec,
        kind: Kind,
        snapshot: Digests,
        reason: str,
        quiet: bool = False,
        work: SyncWork | None = None,
    ) -> None:
        started = self.clock.time()
        build = deploy = None
        sync = None
        try:
            if kind is Kind.SYNC:
                try:
                    sync = self.syncer.run(svc, work or SyncWork())
                except Exception as exc:  # noqa: BLE001 - Docker away, a file unreadable...
                    logger.opt(exception=exc).warning("sync of {} failed", svc.name)
                    error = f"{type(exc).__name__}: {exc}"[:500]
                    fields = sync_fields(self.clock.time(), error)
                    sync = SyncReport(False, error, fields=fields)
                deploy = CommandResult(sync.ok, sync.seconds, sync.detail, changed=sync.changed)
            elif kind is Kind.BUILD and not svc.served:
                # one compose run builds and recreates; it reports whether it got past the build
                both = self.compose.build_and_up(svc.name, self.cancel, self.build_timeout_s)
                build = replace(both, ok=True) if both.touched else both
                deploy = both if both.touched else None
                if both.ok:
                    self._recreated(svc)
                    self.syncer.rebuilt(svc)
                    self.syncer.catch_up_all(svc)
            elif kind is Kind.PULL:
                build, deploy = self._pull(svc)
            else:
                if kind is Kind.BUILD:
                    build = self.compose.build(svc.name, self.cancel, self.build_timeout_s)
                    if build.ok:
                        self.syncer.rebuilt(svc)  # before the new instances catch up
                        # the image is ready and the rollout begins (build-succeeded
                        # comes with the job's end): `sidecar rebuild` prints it now
                        self.events("built", svc.name, seconds=f"{build.duration:.3f}")
                if (build is None or build.ok) and not self.cancel.is_set():
                    deploy = self._deploy(svc, kind)
        except Exception as exc:  # noqa: BLE001 - a crashed job must still report back
            logger.exception("{} job for {} crashed", kind.value, svc.name)
            failed = CommandResult(
                False, self.clock.time() - started, f"{type(exc).__name__}: {exc}"
            )
            build, deploy = (
                (failed, None) if build is None and kind is Kind.BUILD else (build, failed)
            )
        deployed = kind is not Kind.SYNC and deploy is not None and deploy.ok and deploy.changed
        image = self._image(svc) if deployed else ""
        built = kind is Kind.BUILD and build is not None and build.ok and deployed
        pushed = self._push(svc) if built and svc.push else ""
        self.report(
            JobDone(
                svc.name, kind, build, deploy, snapshot, reason, started, quiet, sync, image, pushed
            )
        )

    def _push(self, svc: ServiceSpec) -> str:
        """x-sidecar push: the good build tagged and pushed (the digest), after it is live;
        a push that fails is reported and changes nothing of what runs."""
        assert svc.push is not None
        t0 = self.clock.time()
        try:
            digest = self.compose.push(svc, svc.push)
        except Exception as exc:  # noqa: BLE001 - the registry's answer is the report
            logger.error("{}: push to {} failed: {}", svc.name, svc.push, exc)
            self.events("push-failed", svc.name, target=svc.push, error=str(exc)[-500:])
            return ""
        seconds = f"{self.clock.time() - t0:.3f}"
        self.events("pushed", svc.name, target=svc.push, digest=digest, seconds=seconds)
        return digest

    def _pull(self, svc: ServiceSpec) -> tuple[CommandResult, CommandResult | None]:
        """Pull the service's image; roll it out (served) or recreate (plain) only when what
        runs is not the pulled image. A failed pull touches nothing."""
        pulled = self.compose.pull(svc.name, self.cancel, self.build_timeout_s)
        if not pulled.ok or self.cancel.is_set():
            return pulled, None
        if self.compose.runs_image(svc):
            detail = "the pulled image is the one running: nothing to roll out"
            return pulled, CommandResult(True, 0.0, detail, changed=False)
        return pulled, self._deploy(svc, Kind.ROLLOUT)

    def _image(self, svc: ServiceSpec) -> str:
        """The image the service runs after a deploy, for its version record (GET /v1/watch);
        '' when Docker cannot say: the deploy itself is what counts."""
        try:
            return self.compose.image_id(svc)
        except Exception as exc:  # noqa: BLE001 - a detail of the record, never the job's fate
            logger.debug("image id of {}: {}", svc.name, exc)
            return ""

    def _deploy(self, svc: ServiceSpec, kind: Kind) -> CommandResult:
        t0 = self.clock.time()
        if svc.served:
            res = (
                self.deployer.converge(svc) if kind is Kind.CONVERGE else self.deployer.rollout(svc)
            )
            return CommandResult(res.ok, self.clock.time() - t0, res.detail, changed=res.changed)
        if kind is Kind.CONVERGE:
            self.deployer.unserve(svc.name)
        result = self.compose.up([svc.name])
        if result.ok:
            self._recreated(svc)
            self.syncer.catch_up_all(svc)  # containers compose made get the synced files
        return result

    def _recreated(self, svc: ServiceSpec) -> None:
        if self.recreated is None:
            return
        try:
            running = self.compose.running_instances(svc.name)
            self.recreated([ip for i in running for ip in i.ips.values()])
        except Exception as exc:  # noqa: BLE001 - an optimisation: never fails the job
            logger.debug("{}: neighbour flush skipped: {}", svc.name, exc)
