"""Which instances serve each served service, published to Redis on every change.

The one place rotation state lives. Rollouts (worker threads) and Docker events (issue 4)
change it through this object; each change is published atomically (see Store)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from loguru import logger

from sidecar.core.errors import StoreUnavailable
from sidecar.core.keys import TraefikKeys
from sidecar.core.ports import StorePort
from sidecar.core.serving import RetrySpec


@dataclass
class _Service:
    rule: str
    entrypoints: tuple[str, ...]
    retry: RetrySpec
    members: dict[str, str] = field(default_factory=dict)  # container id -> url, in order
    states: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> instance info


class Rotation:
    def __init__(self, store: StorePort, traefik: TraefikKeys) -> None:
        self.store = store
        self.traefik = traefik
        self._services: dict[str, _Service] = {}
        self._lock = threading.RLock()
        self.dirty: set[str] = set()  # publishes that failed (Redis away): retried later
        self._expected: set[str] = set()  # containers the sidecar itself is stopping
        # containers that got a fatal kill/stop/die: on their way out whoever sent it, so
        # never admitted again and not counted as replicas (cleared on destroy or start)
        self._leaving: set[str] = set()
        # containers someone killed or stopped (`docker kill`/`stop`): their death is no crash
        self._killed: set[str] = set()
        # start events seen per container (a restart is done once its start was seen)
        self._starts: dict[str, int] = {}
        # what Traefik last got per service: an unchanged routing writes only the table
        self._published: dict[str, tuple[tuple[str, ...], str, tuple[str, ...], RetrySpec]] = {}

    def configure(
        self, service: str, rule: str, entrypoints: tuple[str, ...], *, retry: RetrySpec
    ) -> None:
        with self._lock:
            svc = self._services.get(service)
            if svc is None:
                self._services[service] = _Service(rule, entrypoints, retry)
            elif (svc.rule, svc.entrypoints, svc.retry) != (rule, entrypoints, retry):
                svc.rule, svc.entrypoints, svc.retry = rule, entrypoints, retry
            else:
                return
            self._publish(service)

    def urls(self, service: str) -> list[str]:
        with self._lock:
            svc = self._services.get(service)
            return list(svc.members.values()) if svc else []

    def census(self) -> dict[str, tuple[int, dict[str, int]]]:
        """service -> (rotation size, instance state -> count), for the metrics."""
        with self._lock:
            out = {}
            for name, svc in self._services.items():
                states = [info.get("state", "?") for info in svc.states.values()]
                out[name] = (len(svc.members), {s: states.count(s) for s in set(states)})
            return out

    def members(self, service: str) -> dict[str, str]:
        with self._lock:
            svc = self._services.get(service)
            return dict(svc.members) if svc else {}

    def note(self, service: str, cid: str, name: str, state: str, url: str = "") -> None:
        """Record an instance's state for the instance table (published with the rotation)."""
        with self._lock:
            svc = self._services.get(service)
            if svc is None:
                return
            if state == "gone":
                svc.states.pop(cid, None)
            else:
                svc.states[cid] = {
                    "name": name,
                    "state": state,
                    "url": url,
                    "since": f"{time.time():.3f}",
                }
            self._publish(service)

    def add(self, service: str, cid: str, name: str, url: str) -> None:
        with self._lock:
            svc = self._services[service]
            svc.members[cid] = url
            svc.states[cid] = {
                "name": name,
                "state": "serving",
                "url": url,
                "since": f"{time.time():.3f}",
            }
            self._publish(service)
        logger.info("{}: {} joined the rotation ({} serving)", service, name, len(svc.members))

    def remove(self, service: str, cid: str, state: str = "draining") -> bool:
        with self._lock:
            svc = self._services.get(service)
            if svc is None or cid not in svc.members:
                return False
            del svc.members[cid]
            if cid in svc.states:
                svc.states[cid]["state"] = state
                svc.states[cid]["since"] = f"{time.time():.3f}"
            self._publish(service)
            left = len(svc.members)
        logger.debug("{}: {} left the rotation ({} serving)", service, cid[:12], left)
        return True

    def expect_exit(self, ids: list[str]) -> None:
        """The sidecar is about to stop these: their death is not a crash."""
        with self._lock:
            self._expected.update(ids)

    def exit_expected(self, cid: str) -> bool:
        """Stopped by the sidecar, or killed/stopped by someone: not a crash."""
        with self._lock:
            known = self._expected | self._killed
            return any(cid.startswith(e) or e.startswith(cid) for e in known)

    def mark_leaving(self, cid: str, killed: bool) -> None:
        with self._lock:
            self._leaving.add(cid)
            if killed:
                self._killed.add(cid)

    def mark_back(self, cid: str) -> None:
        """Started again (`docker start`): an ordinary instance once more."""
        with self._lock:
            self._leaving.discard(cid)
            self._killed.discard(cid)
            self._expected = {e for e in self._expected if not cid.startswith(e)}
            self._starts[cid] = self._starts.get(cid, 0) + 1

    def starts(self, cid: str) -> int:
        with self._lock:
            return self._starts.get(cid, 0)

    def is_leaving(self, cid: str) -> bool:
        with self._lock:
            return cid in self._leaving

    def forget_container(self, cid: str) -> None:
        """Destroyed: nothing of our state may point at it any more."""
        with self._lock:
            self._expected = {e for e in self._expected if not cid.startswith(e)}
            self._leaving.discard(cid)
            self._killed.discard(cid)
            self._starts.pop(cid, None)
            for service, svc in self._services.items():
                if cid in svc.members or cid in svc.states:
                    svc.members.pop(cid, None)
                    svc.states.pop(cid, None)
                    self._publish(service)

    def drop(self, service: str) -> None:
        """The service is no longer served: empty rotation, router and servers deleted."""
        with self._lock:
            svc = self._services.pop(service, None)
            self._published.pop(service, None)
            if svc is None:
                return
            try:
                self.store.publish_rotation(service, [], {}, self.traefik, svc.rule, ())
            except StoreUnavailable:
                logger.warning("redis unavailable: rotation of {} not deleted", service)

    def republish(self) -> None:
        with self._lock:
            self._published.clear()  # Redis may have lost everything: write it all
            for service in list(self._services):
                self._publish(service)

    def _publish(self, service: str) -> None:
        svc = self._services[service]
        instances = {cid: json.dumps(info, sort_keys=True) for cid, info in svc.states.items()}
        routing = (tuple(svc.members.values()), svc.rule, svc.entrypoints, svc.retry)
        try:
            if self._published.get(service) == routing:
                # Traefik's provider turns every key notification into a configuration
                # message (each costs it a 2 s throttle slot): leave its keys alone
                self.store.publish_instances(service, instances)
                return
            self._published.pop(service, None)
            self.store.publish_rotation(
                service,
                list(svc.members.values()),
                instances,
                self.traefik,
                svc.rule,
                svc.entrypoints,
                svc.retry,
            )
            self._published[service] = routing
            self.dirty.discard(service)
        except StoreUnavailable:
            self.dirty.add(service)
            logger.warning("redis unavailable: rotation of {} not published (will retry)", service)
