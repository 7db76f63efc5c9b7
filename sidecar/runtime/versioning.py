"""The deployed versions of each service, written through the store on the reactor's
thread (`core.versions` decides; this only remembers and writes).

The newest version of each service is also kept in memory: a Redis that came back empty
gets it again with the re-publish, so numbers never go back while the daemon runs. A
deploy seen while Redis is away, for a service whose number the daemon does not know yet,
records nothing (it could only guess a number)."""

from __future__ import annotations

from loguru import logger

from sidecar.core.errors import StoreUnavailable
from sidecar.core.planner import Kind
from sidecar.core.ports import Clock, StorePort
from sidecar.core.versions import KEPT, Version, next_version


class Versions:
    def __init__(self, store: StorePort, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.newest: dict[str, Version] = {}

    def deployed(
        self,
        service: str,
        kind: Kind,
        image: str,
        reason: str,
        commit: str = "",
        digest: str = "",
    ) -> Version | None:
        """A deploy of `kind` succeeded: its version, if it makes one (written to Redis before
        the `deployed` event, so a watcher woken by the event finds it)."""
        last = self.newest.get(service)
        if last is None:
            try:
                last = self.store.last_version(service)
            except StoreUnavailable:
                logger.warning("{}: redis unavailable, this deploy gets no version", service)
                return None
        at = self.clock.time()
        version = next_version(last, service, kind, image, at, reason, commit, digest)
        if version is None:
            return None
        self.newest[service] = version
        self._write(version)
        return version

    def republish(self) -> None:
        for version in self.newest.values():
            self._write(version)

    def _write(self, version: Version) -> None:
        try:
            self.store.record_version(version, KEPT)
        except StoreUnavailable:
            logger.warning(
                "redis unavailable: version {} of {} kept in memory (written when it is back)",
                version.version,
                version.service,
            )
