"""develop.watch's sync, restart and exec, carried out on worker threads (a SYNC job, one per
service at a time, like every job). What to send where comes from `core.syncing`; this
module reads the files, talks to the containers through the DockerPort and keeps each
service's sync record (in memory, written through to Redis).

Per batch and container: one tar stream (the archive endpoint) for every new or changed
file, one `rm -rf` for the deleted ones, all containers of the service in parallel. A
container whose image cannot delete (no rm, no busybox) makes the service rebuild when the
deleted files are part of its build; otherwise the stale files are reported by name."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from loguru import logger

from sidecar.adapters.engine import build_tar
from sidecar.adapters.hashing import digest_many, walk_files
from sidecar.core.errors import CannotDelete, StoreUnavailable
from sidecar.core.mapping import PathMapper
from sidecar.core.model import ServiceSpec, WatchRule
from sidecar.core.planner import Digests
from sidecar.core.ports import DockerPort, StorePort
from sidecar.core.syncing import (
    SyncRecord,
    exec_rules_fired,
    payload,
    restart_after_sync,
    sync_diff,
    sync_fields,
)
from sidecar.core.types import Instance, SyncReport
from sidecar.runtime.deployer import Deployer

EventSink = Callable[..., None]
_PARALLEL = 16  # containers copied to at once (compose watch uses the same limit)


@dataclass(frozen=True)
class SyncWork:
    """What a SYNC job does for one service."""

    paths: frozenset[str] = frozenset()  # host paths matched by sync rules
    restart: bool = False  # a `restart` rule matched a changed file
    full: bool = False  # compare every file under the sync paths (start-up, rules changed)
    # the rules changed: what the record says was synced may sit at other targets now, so
    # every container gets the whole record again
    reset: bool = False

    def merged(self, other: SyncWork) -> SyncWork:
        return SyncWork(
            self.paths | other.paths,
            self.restart or other.restart,
            self.full or other.full,
            self.reset or other.reset,
        )

    def __bool__(self) -> bool:
        return bool(self.paths) or self.restart or self.full


@dataclass
class _Sent:
    """One container's share of a batch, and what came of it."""

    inst: Instance
    rels: set[str]
    ok: bool = True
    error: str = ""
    cannot_delete: bool = False


@dataclass(frozen=True)
class _Package:
    tar: bytes
    size: int
    deletes: list[str]


class Syncer:
    def __init__(
        self,
        compose: DockerPort,
        store: StorePort,
        deployer: Deployer,
        events: EventSink,
        mapper: PathMapper,
    ) -> None:
        self.compose = compose
        self.store = store
        self.deployer = deployer
        self.events = events
        self.mapper = mapper  # replaced by the reactor when the project changes
        self._records: dict[str, SyncRecord] = {}
        self._lock = threading.Lock()
        self.unsaved: set[str] = set()  # records Redis did not get (it was away)
        self._pool = ThreadPoolExecutor(_PARALLEL, thread_name_prefix="sync")

    # --- the record ----------------------------------------------------------------------
    def record(self, service: str) -> SyncRecord:
        with self._lock:
            rec = self._records.get(service)
        if rec is not None:
            return rec
        try:
            files, gen, containers = self.store.sync_record(service)
            rec = SyncRecord(files, gen, containers)
        except StoreUnavailable:
            rec = SyncRecord()
        with self._lock:
            return self._records.setdefault(service, rec)

    def _save(self, service: str, changed: Digests) -> None:
        rec = self.record(service)
        try:
            if service in self.unsaved:
                self.store.save_sync_record(service, rec.files, rec.gen, rec.containers, True)
                self.unsaved.discard(service)
            else:
                self.store.save_sync_record(service, changed, rec.gen, rec.containers, False)
        except StoreUnavailable:
            self.unsaved.add(service)

    def save_unsaved(self, everything: bool = False) -> None:
        """Write what Redis missed; `everything`: Redis lost its data, rewrite every record."""
        if everything:
            with self._lock:
                self.unsaved |= set(self._records)
        for service in list(self.unsaved):
            self._save(service, {})

    def forget(self, service: str) -> None:
        with self._lock:
            self._records.pop(service, None)
        self.unsaved.discard(service)

    def rebuilt(self, spec: ServiceSpec) -> None:
        """A good build: the image holds the build context as it is on disk."""
        if not spec.sync_rules and spec.name not in self._records:
            return
        rec = self.record(spec.name)
        if not rec.files:
            return
        covered = [r for r in rec.files if self.mapper.in_context(spec.name, self.mapper.abs(r))]
        rec.rebuilt(covered)
        self.unsaved.add(spec.name)  # a whole rewrite
        self._save(spec.name, {})

    # --- what changed --------------------------------------------------------------------
    def _targets(self, spec: ServiceSpec, path: str) -> list[tuple[WatchRule, str]]:
        """(sync rule, container path) for each sync rule of the service matching `path`
        (none for a bind-mounted path: the container sees the host file already)."""
        if spec.bind_mounted(path):
            return []
        out = []
        for svc, index in self.mapper.hits_for(path):
            rule = self.mapper.rule(svc, index) if svc == spec.name else None
            if rule is not None and rule.syncs:
                target = self.mapper.container_path(svc, index, path)
                if target:
                    out.append((rule, target))
        return out

    def _observe(self, spec: ServiceSpec, work: SyncWork) -> tuple[Digests, set[str], set[str]]:
        """Digests of the files the work covers (None: gone), the initial_sync tree, and
        what only the full walk found (not reported as changed)."""
        rec = self.record(spec.name)
        files: set[str] = set()
        gone: set[str] = set()
        initial: set[str] = set()
        walked: set[str] = set()
        roots = list(spec.sync_rules) if work.full else []
        for rule in roots:
            tree = [rule.path] if os.path.isfile(rule.path) else walk_files(rule.path, self.mapper)
            found = {f for f in tree if self._targets(spec, f)}
            files |= found
            walked |= {self.mapper.rel(f) for f in found}
            if rule.initial_sync:
                initial |= {self.mapper.rel(f) for f in found}
            prefix = self.mapper.rel(rule.path)
            gone |= {r for r in rec.files if r == prefix or r.startswith(prefix + "/")}
        for path in work.paths:
            if os.path.isdir(path):
                files |= {f for f in walk_files(path, self.mapper) if self._targets(spec, f)}
            else:
                files.add(path)
                prefix = self.mapper.rel(path) + "/"
                gone |= {r for r in rec.files if r.startswith(prefix)}
        observed: Digests = {self.mapper.rel(p): d for p, d in digest_many(sorted(files)).items()}
        for rel in gone - observed.keys():
            if not os.path.lexists(self.mapper.abs(rel)):
                observed[rel] = None
        reported = {self.mapper.rel(p) for p in work.paths}
        return observed, initial, walked - reported

    def _image_digests(self, spec: ServiceSpec, rels: Iterable[str]) -> Digests:
        """What the image holds, as far as known: the last good build's digests."""
        unknown = [r for r in rels if r not in self.record(spec.name).files]
        if not spec.built or not unknown:
            return {}
        try:
            return self.store.get_hashes(spec.name, unknown)
        except StoreUnavailable:
            return {}

    # --- entry points --------------------------------------------------------------------
    def run(self, spec: ServiceSpec, work: SyncWork) -> SyncReport:
        """One batch: sync, then restart, then exec, as compose orders them."""
        t0 = time.monotonic()
        rec = self.record(spec.name)
        if work.reset:
            rec.behind()
        observed, initial, walked = self._observe(spec, work)
        image = self._image_digests(spec, observed)
        diff = sync_diff(observed, rec.files, image)
        # a file the full walk found that neither the record nor a build knows: what the
        # container holds is unknown, so it is sent only when initial_sync asks for it
        diff = {
            r: d
            for r, d in diff.items()
            if r not in walked or r in rec.files or r in image or r in initial
        }
        instances = self.compose.running_instances(spec.name)
        shares = [
            _Sent(i, payload(rec.containers.get(i.id), rec.gen, diff, rec.files, initial))
            for i in instances
        ]
        shares = [s for s in shares if s.rels]
        synced_by_rule: dict[int, int] = {}
        report = SyncReport(True, "nothing to sync")
        if shares:
            report, synced_by_rule = self._send(spec, shares, observed, diff, instances, t0)
        restart = work.restart or restart_after_sync(spec, synced_by_rule)
        changed = report.changed
        if restart and report.ok and not report.fallback:
            restarted = self.restart(spec)
            changed = True
            if not restarted.ok:
                report = SyncReport(False, restarted.detail, True, seconds=report.seconds)
        for index in exec_rules_fired(spec, synced_by_rule):
            self._exec(spec, index)
            changed = True
        return SyncReport(
            report.ok,
            report.detail,
            changed,
            report.fallback,
            time.monotonic() - t0,
            report.fields,
        )

    def catch_up(self, spec: ServiceSpec, inst: Instance) -> str | None:
        """Before a new instance joins (or after compose made it): everything the record
        holds, so it never serves the image's stale copy. None, or why it failed."""
        if not spec.sync_rules:
            return None
        rec = self.record(spec.name)
        if rec.containers.get(inst.id) == rec.gen:
            return None
        if not rec.files:
            rec.applied({}, [inst.id], [*rec.containers, inst.id])
            self._save(spec.name, {})
            return None
        share = _Sent(inst, set(rec.files))
        targets = self._all_targets(spec, share.rels)
        self._copy(share, self._package(share.rels, rec.files, targets))
        if not share.ok and not share.cannot_delete:
            self.events("sync-failed", spec.name, instance=inst.name, error=share.error)
            return f"sync of {len(share.rels)} files failed: {share.error}"
        rec.applied({}, [inst.id], [*rec.containers, inst.id])
        self._save(spec.name, {})
        self.events("synced", spec.name, instance=inst.name, files=len(rec.files), reason="new")
        return None

    def catch_up_all(self, spec: ServiceSpec) -> None:
        """After compose (re)created containers of a plain service."""
        if not spec.sync_rules:
            return
        for inst in self.compose.running_instances(spec.name):
            self.catch_up(spec, inst)

    # --- steps ---------------------------------------------------------------------------
    def _send(
        self,
        spec: ServiceSpec,
        shares: list[_Sent],
        observed: Digests,
        diff: Digests,
        instances: list[Instance],
        t0: float,
    ) -> tuple[SyncReport, dict[int, int]]:
        rec = self.record(spec.name)
        digests = {**rec.files, **observed}
        every = set().union(*(s.rels for s in shares))
        deletes = sum(1 for r in every if digests.get(r) is None)
        self.events(
            "sync-started",
            spec.name,
            files=len(every) - deletes,
            deletes=deletes,
            containers=len(shares),
        )
        targets = self._all_targets(spec, every)
        packages: dict[frozenset[str], _Package] = {}
        for s in shares:  # containers at the same generation share one tar
            key = frozenset(s.rels)
            if key not in packages:
                packages[key] = self._package(s.rels, digests, targets)
        sizes = list(self._pool.map(lambda s: self._copy(s, packages[frozenset(s.rels)]), shares))
        reached = [s.inst.id for s in shares if s.ok]
        sent = {r: digests.get(r) for r in every}
        rec.applied(sent, reached, [i.id for i in instances])
        for inst in instances:  # already current: nothing to send, still current
            if inst.id not in {s.inst.id for s in shares}:
                rec.containers[inst.id] = rec.gen
        self._save(spec.name, sent)
        seconds = time.monotonic() - t0
        failed = [s for s in shares if not s.ok and not s.cannot_delete]
        stuck = [s for s in shares if s.cannot_delete]
        fallback = self._fallback(spec, stuck, digests) if stuck else ""
        error = failed[0].error if failed else ""
        fields = sync_fields(time.time(), error, len(every), seconds)
        if failed:
            error = "; ".join(f"{s.inst.name}: {s.error}" for s in failed)
            logger.error("{}: sync failed in {} container(s): {}", spec.name, len(failed), error)
            self.events("sync-failed", spec.name, error=error, containers=len(failed))
        if reached:
            self.events(
                "synced",
                spec.name,
                files=len(every) - deletes,
                deleted=deletes,
                bytes=max(sizes, default=0),
                containers=len(reached),
                seconds=f"{seconds:.3f}",
            )
        by_rule: dict[int, int] = {}
        for rel in sent:
            for rule, _ in targets.get(rel, ()):
                by_rule[rule.index] = by_rule.get(rule.index, 0) + 1
        ok = not failed
        detail = f"synced {len(every)} files to {len(reached)} containers"
        return SyncReport(ok, detail, True, fallback, seconds, fields), by_rule

    def _all_targets(
        self, spec: ServiceSpec, rels: Iterable[str]
    ) -> dict[str, list[tuple[WatchRule, str]]]:
        return {rel: self._targets(spec, self.mapper.abs(rel)) for rel in rels}

    def _package(
        self, rels: Iterable[str], digests: Digests, targets: dict[str, list[tuple[WatchRule, str]]]
    ) -> _Package:
        """What one container receives, made once however many containers receive it."""
        files: dict[str, str] = {}
        deletes: list[str] = []
        for rel in rels:
            host = self.mapper.abs(rel)
            for _, target in targets.get(rel, ()):
                if digests.get(rel) is None:
                    deletes.append(target)
                else:
                    files[target] = host
        tar, size = build_tar(files) if files else (b"", 0)
        return _Package(tar, size, deletes)

    def _copy(self, share: _Sent, package: _Package) -> int:
        """One container: one rm of what is gone, one tar of what exists. Bytes sent."""
        try:
            if package.deletes:
                try:
                    self.compose.delete_in(share.inst.id, package.deletes)
                except CannotDelete:
                    share.cannot_delete = True
            if package.tar:
                self.compose.copy_in(share.inst.id, package.tar)
        except Exception as exc:  # noqa: BLE001 - any Docker error: this container failed
            share.ok = False
            share.error = f"{type(exc).__name__}: {exc}"[:500]
        return package.size

    def _fallback(self, spec: ServiceSpec, stuck: list[_Sent], digests: Digests) -> str:
        """Deletes a container cannot do. Built files: the service rebuilds (the new image
        no longer has them). Others are reported by name and dropped from the record (a
        container made from the image has them again; nothing the sidecar can change)."""
        rec = self.record(spec.name)
        gone = sorted({r for s in stuck for r in s.rels if digests.get(r) is None})
        built = [r for r in gone if self.mapper.in_context(spec.name, self.mapper.abs(r))]
        left = [r for r in gone if r not in built]
        names = ", ".join(s.inst.name for s in stuck)
        if left:
            for rel in left:
                rec.files.pop(rel, None)
            self.unsaved.add(spec.name)
            self.events(
                "sync-failed",
                spec.name,
                error=f"cannot delete {', '.join(left[:20])} in {names}: the image has no rm "
                "(nor busybox) and the files are not part of its build; they stay until the "
                "container is made without them",
            )
        if built and spec.built:
            reason = (
                f"{len(built)} deleted files cannot be removed in {names} (the image has no "
                "rm): rebuilding instead"
            )
            logger.warning("{}: {}", spec.name, reason)
            self.events("sync-fallback", spec.name, reason=reason, files=len(built))
            return reason
        return ""

    def restart(self, spec: ServiceSpec) -> SyncReport:
        """Served: one batch at a time, out of the rotation first (zero downtime). Plain:
        every container at once, as `docker compose restart`."""
        t0 = time.monotonic()
        if spec.served:
            done = self.deployer.restart(spec)
            ok, detail, count = done.ok, done.detail, done.started
        else:
            running = self.compose.running_instances(spec.name)
            self.deployer.rotation.expect_exit([i.id for i in running])
            errors = [
                e
                for e in self._pool.map(
                    lambda i: self._restart_one(i.id, spec.stop_grace_s), running
                )
                if e
            ]
            ok, detail, count = not errors, "; ".join(errors), len(running) - len(errors)
        seconds = time.monotonic() - t0
        if ok:
            self.events("restarted", spec.name, instances=count, seconds=f"{seconds:.3f}")
        else:
            self.events("restart-failed", spec.name, error=detail)
        return SyncReport(ok, detail or f"restarted {count}", True, seconds=seconds)

    def _restart_one(self, cid: str, grace: float) -> str:
        try:
            self.compose.restart_instance(cid, grace)
            return ""
        except Exception as exc:  # noqa: BLE001 - reported per container
            return f"{cid[:12]}: {exc}"

    def _exec(self, spec: ServiceSpec, index: int) -> None:
        """A sync+exec rule's command in every running container, in parallel; each result
        is an event. A failing command is reported, nothing else."""
        rule = next(r for r in spec.watch if r.index == index)
        assert rule.exec is not None
        x = rule.exec
        running = self.compose.running_instances(spec.name)

        def one(inst: Instance) -> None:
            t0 = time.monotonic()
            try:
                res = self.compose.exec_in(
                    inst.id,
                    list(x.command),
                    x.user,
                    x.privileged,
                    x.working_dir,
                    dict(x.environment),
                )
                code, output = res.exit_code, res.output
            except Exception as exc:  # noqa: BLE001 - reported as a failed exec
                code, output = -1, f"{type(exc).__name__}: {exc}"
            if code != 0:
                logger.warning("{}: exec in {} exited {}: {}", spec.name, inst.name, code, output)
            self.events(
                "exec-finished",
                spec.name,
                container=inst.name,
                rule=index,
                exit_code=code,
                result="ok" if code == 0 else "failed",
                output=output[-1000:],
                seconds=f"{time.monotonic() - t0:.3f}",
            )

        list(self._pool.map(one, running))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
