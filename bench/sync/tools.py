"""The two tools of the sync benchmark: the other benchmarks' tools (bench/rebuild.py for the
published fixtures, bench/zero_downtime for the served one) that can also count what they
synced, and the sidecar's `sync+restart` seen through its events stream."""

from __future__ import annotations

import time
from typing import Any

from bench import rebuild
from bench.common import Json
from bench.sync.analyse import restart_finished, sidecar_counters, sync_phases, watch_counters
from bench.sync.fixture import SVC
from bench.zero_downtime import record as zd
from testkit.compose_watch import WatchProcess
from testkit.load import OpenLoad
from testkit.sidecar import Sidecar

SIDECAR = "sidecar"
WATCH = "compose watch"
RESTART_TIMEOUT = 30.0  # a sync+restart of 2 replicas takes a few seconds


class SidecarCounted:
    sc: Sidecar

    def counters(self) -> Json:
        """Syncs, batches, files, builds, fallbacks, failures of `web` so far."""
        return sidecar_counters(self.sc.events(service=SVC))


class WatchCounted:
    watch: WatchProcess

    def counters(self) -> Json:
        return watch_counters(self.watch.text(), SVC)


class SidecarTool(SidecarCounted, rebuild.SidecarTool):
    def phases(self, svc: str, since: float) -> dict[str, float]:
        """bench/rebuild's phases of a rebuild, and those of a sync (see `sync_phases`)."""
        return {**super().phases(svc, since), **sync_phases(self.sc.events(service=svc), since)}


class WatchTool(WatchCounted, rebuild.ComposeWatchTool):
    pass


EditTool = SidecarTool | WatchTool


class ServedSidecar(SidecarCounted, zd.SidecarTool):
    """bench/zero_downtime's sidecar, finished when the `sync+restart` is (its `restarted`
    event, see `restart_finished`) rather than at its first `job-finished`."""

    def mark(self) -> Any:
        return len(self.sc.events(service=SVC))

    def wait_finished(self, since: float, content: str, load: OpenLoad, mark: Any) -> zd.Finished:
        deadline = time.monotonic() + RESTART_TIMEOUT
        while time.monotonic() < deadline:
            if self.sc.proc is not None and self.sc.proc.poll() is not None:
                raise RuntimeError(f"the sidecar exited:\n{self.log_tail()}")
            events = self.sc.events(service=SVC)[int(mark) :]
            done = restart_finished(events)
            if done is not None:
                detail: Json = dict(sync_phases(events, since))
                for e in events:
                    if e.get("event") == "restarted":
                        detail["restart_s"] = float(e.get("seconds") or "nan")
                        detail["restarted_instances"] = e.get("instances")
                return zd.Finished(done.at, done.result, detail)
            time.sleep(0.05)
        return zd.Finished(time.time(), "timeout", {})


class ServedWatch(WatchCounted, zd.ComposeWatchTool):
    pass


ServedTool = ServedSidecar | ServedWatch
