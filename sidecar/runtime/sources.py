"""What each service is built from, and what of it changed since its last good build.

Owns the path mapper, the digest comparison and the pending overlay: digests seen on disk
that no successful build has used yet. The committed side lives in Redis (one hash per
service, written only after a build succeeded); while Redis is away the overlay keeps the
truth and a missing committed value counts as "changed", so nothing is lost."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from loguru import logger

from sidecar.adapters.compose import Compose
from sidecar.adapters.hashing import digest_many, scan, walk_files
from sidecar.core.errors import StoreUnavailable
from sidecar.core.ignore import IgnoreList
from sidecar.core.mapping import PathMapper
from sidecar.core.model import Project
from sidecar.core.planner import Digests, changed_digests, scan_diff
from sidecar.core.ports import StorePort

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class Overlay:
    """Digests seen on disk but not yet part of a successful build, per service."""

    pending: dict[str, Digests] = field(default_factory=dict)

    def known(self, service: str) -> Digests:
        return self.pending.setdefault(service, {})

    def committed(self, service: str, snapshot: Digests) -> None:
        mine = self.pending.get(service, {})
        for rel, d in snapshot.items():
            if rel in mine and mine[rel] == d:
                del mine[rel]


@dataclass(frozen=True)
class ScanReport:
    files: int
    seconds: float
    stale: dict[str, Digests]  # service -> files that differ from its last good build


class Sources:
    def __init__(self, store: StorePort, ignores: IgnoreList, workspace: str) -> None:
        self.store = store
        self.ignores = ignores
        self.workspace = workspace
        self.overlay = Overlay()
        # digests of successful builds not yet written to Redis (it was away)
        self.unsaved: dict[str, Digests] = {}
        self.mapper = PathMapper(Project("", workspace, (), {}), {}, ignores, workspace)

    def set_project(self, project: Project) -> PathMapper:
        self.mapper = PathMapper(
            project, Compose.read_dockerignores(project), self.ignores, self.workspace
        )
        return self.mapper

    def _safe(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        try:
            return fn(*args, **kwargs)
        except StoreUnavailable:
            return None

    # --- whole contexts ------------------------------------------------------------------
    def startup(self, services: list[str]) -> ScanReport:
        """Scan every context; compare with the last good builds. A service Redis has never
        seen is recorded as it is (not rebuilt); one whose files differ is stale."""
        t0 = time.monotonic()
        scanned = scan(self.mapper, services)
        stale = {}
        for svc in services:
            committed = self._safe(self.store.all_hashes, svc) or {}
            committed.pop("", None)
            if not committed and not self._safe(self.store.has_hashes, svc):
                self._safe(self.store.commit_hashes, svc, dict(scanned[svc]))
                continue
            diff = scan_diff(scanned[svc], committed)
            if diff:
                self.overlay.known(svc).update(diff)
                stale[svc] = diff
        files = sum(len(v) for v in scanned.values())
        return ScanReport(files, time.monotonic() - t0, stale)

    def take_all(self, service: str) -> None:
        """Before a build from scratch: every file of the context goes into its snapshot."""
        self.overlay.known(service).update(scan(self.mapper, [service])[service])

    def rescan(self, services: list[str]) -> dict[str, Digests]:
        """After lost events (inotify overflow): compare everything again."""
        out = {}
        for svc, scanned in scan(self.mapper, services).items():
            changed = self._note(svc, dict(scanned))
            if changed:
                out[svc] = changed
        return out

    def rebuild_cache(self, services: list[str]) -> list[str]:
        """Redis lost the hash cache: record what is on disk again, without rebuilding.
        Pending (unbuilt) changes stay pending: they are left out of the record."""
        missing = [s for s in services if self._safe(self.store.has_hashes, s) is False]
        for svc, scanned in scan(self.mapper, missing).items():
            pending = self.overlay.known(svc)
            self._safe(
                self.store.commit_hashes,
                svc,
                {r: d for r, d in scanned.items() if r not in pending},
            )
        return missing

    # --- batches -------------------------------------------------------------------------
    def changes(self, paths: set[str]) -> dict[str, Digests]:
        """service -> the files whose content really changed in this batch (relative path
        -> new digest, None: gone)."""
        by_service = self.mapper.map_paths(paths)
        files = {p for ps in by_service.values() for p in ps if not os.path.isdir(p)}
        digests = digest_many(files)
        out = {}
        for svc, svc_paths in by_service.items():
            observed: Digests = {}
            for p in svc_paths:
                if os.path.isdir(p):
                    inside = [f for f in walk_files(p, self.mapper) if self.mapper.includes(svc, f)]
                    observed.update({self.mapper.rel(f): d for f, d in digest_many(inside).items()})
                else:
                    observed[self.mapper.rel(p)] = digests.get(p)
                    if digests.get(p) is None:
                        observed.update(self._gone_below(svc, p))
            changed = self._note(svc, observed)
            if changed:
                out[svc] = changed
        return out

    def _gone_below(self, svc: str, path: str) -> Digests:
        """A vanished path may have been a directory: every file known below it is gone."""
        prefix = self.mapper.rel(path) + "/"
        known = set(self._safe(self.store.hashes_under, svc, prefix) or [])
        known |= {r for r, d in self.overlay.known(svc).items() if r.startswith(prefix) and d}
        return dict.fromkeys(known)

    def _note(self, svc: str, observed: Digests) -> Digests:
        pending = self.overlay.known(svc)
        built_unsaved = self.unsaved.get(svc, {})
        known: Digests = {}
        missing = []
        for rel in observed:  # what this process knows first, then Redis
            if rel in pending:
                known[rel] = pending[rel]
            elif rel in built_unsaved:
                known[rel] = built_unsaved[rel]
            else:
                missing.append(rel)
        if missing:
            known.update(self._safe(self.store.get_hashes, svc, missing) or dict.fromkeys(missing))
        diff = changed_digests(observed, known)
        if not diff:
            logger.debug("{}: {} paths, content unchanged", svc, len(observed))
            return {}
        pending.update(diff)
        return diff

    # --- builds --------------------------------------------------------------------------
    def snapshot(self, service: str) -> Digests:
        return dict(self.overlay.known(service))

    def built(self, service: str, snapshot: Digests) -> None:
        """A build from `snapshot` succeeded: it becomes the committed state. While Redis
        is away it is kept here (`unsaved`) and written by `save_unsaved` when it is back,
        so the same bytes seen again are not built a second time."""
        try:
            self.store.commit_hashes(service, snapshot)
        except StoreUnavailable:
            self.unsaved.setdefault(service, {}).update(snapshot)
        self.overlay.committed(service, snapshot)

    def save_unsaved(self) -> None:
        for service in list(self.unsaved):
            self._safe(self.store.commit_hashes, service, self.unsaved[service])
            if self.store.available:
                del self.unsaved[service]

    def pending_files(self, service: str) -> Digests:
        return dict(self.overlay.pending.get(service, {}))

    def pending(self) -> dict[str, int]:
        return {svc: len(p) for svc, p in self.overlay.pending.items() if p}

    def forget(self, service: str) -> None:
        self.overlay.pending.pop(service, None)
        self.unsaved.pop(service, None)
