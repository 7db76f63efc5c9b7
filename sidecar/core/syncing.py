"""develop.watch decisions, with no I/O: what a batch of changed files asks of a service
(rebuild, sync, restart, exec), what each container must receive, and what the sidecar then
knows each container holds.

The model. Per service the sidecar keeps a *sync record*: path (relative to the workspace)
-> the digest of the content it has put into the service's containers on top of their image
(None: deleted there). The record has a generation; each container remembers the
generation it was last brought to. A container at the current generation needs only a
batch's diff; any other one (a new replica, one a sync failed on, one started before the
sidecar) needs everything the record holds, so no instance ever serves the image's stale
copy. After a rebuild the image is again the truth: the entries it covers leave the record.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from sidecar.core.mapping import CONTEXT
from sidecar.core.model import ServiceSpec
from sidecar.core.planner import Digests


@dataclass(frozen=True)
class WatchWork:
    """What one batch asks of one service, by the rules its changed files matched. Every
    matching rule applies (compose's handleWatchBatch): rebuild first, then sync, then
    restart, then exec; a sync rule's restart or exec happens only if it synced something."""

    rebuild: bool = False
    restart: bool = False  # a `restart` rule matched a changed file
    sync: frozenset[str] = frozenset()  # host paths matched by sync rules

    def __bool__(self) -> bool:
        return self.rebuild or self.restart or bool(self.sync)


def plan_watch(spec: ServiceSpec, hits: Mapping[int, Collection[str]]) -> WatchWork:
    """`hits`: rule index (CONTEXT for the build context / Dockerfile) -> changed paths."""
    rules = {r.index: r for r in spec.watch}
    rebuild = restart = False
    sync: set[str] = set()
    for index, paths in hits.items():
        if not paths:
            continue
        rule = rules.get(index)
        if rule is None:  # the context of a service without rules, or its Dockerfile
            rebuild = rebuild or (index == CONTEXT and spec.built)
        elif rule.action == "rebuild":
            rebuild = True
        elif rule.action == "restart":
            restart = True
        else:
            sync.update(paths)
    return WatchWork(rebuild, restart, frozenset(sync))


def sync_diff(observed: Mapping[str, str | None], record: Digests, image: Digests) -> Digests:
    """The entries of `observed` a container at the record's generation lacks: content that
    differs from what the record says it holds, or, for a path never synced, from the image
    (the last good build's digest; unknown counts as different). A touch yields nothing."""
    out: Digests = {}
    for rel, digest in observed.items():
        had = record[rel] if rel in record else image.get(rel, "?")
        if had != digest:
            out[rel] = digest
    return out


def payload(
    container_gen: int | None, gen: int, diff: Digests, record: Digests, extra: Iterable[str] = ()
) -> set[str]:
    """The paths one container must receive (or lose): the diff when it is current, else
    everything the record holds plus the diff (and `extra`: an initial sync's whole tree)."""
    if container_gen == gen:
        return set(diff)
    return set(record) | set(diff) | set(extra)


@dataclass
class SyncRecord:
    """One service's record, generation and per-container generations (see the module)."""

    files: Digests = field(default_factory=dict)
    gen: int = 0
    containers: dict[str, int] = field(default_factory=dict)

    def applied(self, sent: Digests, reached: Iterable[str], alive: Iterable[str]) -> None:
        """`sent` reached the containers in `reached`: a new generation they are at; the
        others (a failed copy) are behind and get everything next time; containers that are
        gone are forgotten."""
        if sent:
            self.files.update(sent)
            self.gen += 1
        keep = set(alive)
        self.containers = {c: g for c, g in self.containers.items() if c in keep}
        for cid in reached:
            self.containers[cid] = self.gen

    def behind(self) -> None:
        """Every container needs the whole record again (the rules changed)."""
        self.gen += 1
        self.containers.clear()

    def rebuilt(self, covered: Collection[str]) -> None:
        """A new image holds these paths as they are on disk: they leave the record. Every
        container is behind (the new ones get what is left)."""
        self.files = {r: d for r, d in self.files.items() if r not in covered}
        self.behind()


def sync_fields(
    at: float, error: str = "", files: int | None = None, seconds: float | None = None
) -> dict[str, str]:
    """The service hash's `last_sync_*` fields (what `sidecar status` shows) for one sync:
    failed when it carries an error."""
    fields = {
        "last_sync_at": f"{at:.3f}",
        "last_sync_result": "failed" if error else "ok",
        "last_sync_error": error,
    }
    if files is not None:
        fields["last_sync_files"] = str(files)
    if seconds is not None:
        fields["last_sync_seconds"] = f"{seconds:.3f}"
    return fields


def exec_rules_fired(spec: ServiceSpec, synced_by_rule: Mapping[int, int]) -> list[int]:
    """The sync+exec rules whose paths synced at least one entry, once each, in order."""
    return [
        r.index
        for r in spec.watch
        if r.action == "sync+exec" and r.exec is not None and synced_by_rule.get(r.index)
    ]


def restart_after_sync(spec: ServiceSpec, synced_by_rule: Mapping[int, int]) -> bool:
    return any(r.action == "sync+restart" and synced_by_rule.get(r.index) for r in spec.watch)
