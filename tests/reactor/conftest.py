"""The reactor (sidecar.runtime.daemon.Daemon) driven through its ports with in-memory
fakes: no Docker, no Redis, no threads, no sleeping. Each test takes milliseconds.

A `World` is a workspace on disk (real files: the content hashes are real), a compose
model, the fakes, and the reactor in its finite mode (`run_steps`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.core.keys import Keys
from sidecar.core.model import Project, parse_project
from sidecar.core.planner import Lane
from sidecar.core.types import ContainerEvent
from sidecar.runtime.daemon import Daemon, Paths
from sidecar.settings import Settings
from tests.reactor.fakes import (
    FakeClock,
    FakeDocker,
    FakeProber,
    FakeRegistries,
    FakeStore,
    InlineExecutor,
)

PROJECT = "rx"
# a served service's rollout waits nothing here: no proxy to settle, nothing to drain
FAST_ROLLOUT = {"proxy_settle": 0, "drain": 0}


class World:
    def __init__(self, root: Path, **settings: Any) -> None:
        self.root = root
        self.services: dict[str, dict[str, Any]] = {}
        self.clock = FakeClock()
        self.docker = FakeDocker(PROJECT)
        self.store = FakeStore(Keys("sidecar", PROJECT))
        self.prober = FakeProber()
        self.work = InlineExecutor()
        self.repair = InlineExecutor()
        self.sync = InlineExecutor()
        defaults = {
            "debounce_ms": 10,
            "debounce_max_ms": 100,
            "resync_interval_s": 3600,
            "neighbour_flush": False,  # no host I/O here; a test may plug in a recorder
        }
        self.settings = Settings(workspace=root, project_name=PROJECT, **{**defaults, **settings})
        self.daemon: Daemon | None = None
        self.registries = FakeRegistries()
        self.git: Any = None  # a FakeGit, for a World whose settings name a git_remote

    # --- the project ---------------------------------------------------------------------
    def built(self, name: str, content: str = "v1", **extra: object) -> None:
        ctx = self.root / name
        (ctx / "www").mkdir(parents=True, exist_ok=True)
        (ctx / "Dockerfile").write_text("FROM scratch\nCOPY www /www\n")
        (ctx / "www" / "index.html").write_text(content)
        self.services[name] = {"build": {"context": str(ctx)}, **extra}

    def served(self, name: str, replicas: int = 2, **serve: Any) -> None:
        spec = {"port": 8080, "replicas": replicas, "rollout": FAST_ROLLOUT, **serve}
        self.built(name)
        self.services[name]["x-sidecar"] = spec

    def pulled(self, name: str, replicas: int = 2, **serve: Any) -> None:
        """A served service from an image only (a registry's), no build section."""
        spec = {"port": 8080, "replicas": replicas, "rollout": FAST_ROLLOUT, **serve}
        self.services[name] = {"image": f"127.0.0.1:5000/{name}:latest", "x-sidecar": spec}

    def model(self) -> Project:
        config = {"name": PROJECT, "working_dir": str(self.root), "services": self.services}
        return parse_project(config, (str(self.root / "compose.yaml"),))

    # --- the reactor ---------------------------------------------------------------------
    def start(self, images: bool = True) -> Daemon:
        self.docker.model = self.model()
        if images:
            self.docker.images |= set(self.services)
        self.daemon = Daemon(
            self.settings,
            self.docker,
            self.store,
            clock=self.clock,
            executors={Lane.WORK: self.work, Lane.REPAIR: self.repair, Lane.SYNC: self.sync},
            prober=self.prober,
            files=(str(self.root / "compose.yaml"),),
            registries=self.registries,
            git=self.git,
        )
        self.docker.on_event = lambda action, cid, svc: self.event(
            action, cid, svc, signal="15" if action == "kill" else ""
        )
        self.daemon.start_up()
        self.settle()
        return self.daemon

    @property
    def d(self) -> Daemon:
        assert self.daemon is not None
        return self.daemon

    def settle(self, rounds: int = 5) -> None:
        """Run until nothing more happens, letting the debounce window pass."""
        for _ in range(rounds):
            self.d.run_steps(max_steps=200)
            self.clock.advance(self.settings.debounce_max_ms / 1000 + 0.01)
        self.d.run_steps(max_steps=200)

    def edit(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.d.queue.put(Paths([str(path)]))

    def event(
        self,
        action: str,
        cid: str,
        service: str,
        status: str = "",
        signal: str = "",
        exit_code: str = "",
    ) -> None:
        """A Docker event as the events thread delivers it (its immediate part included)."""
        name = self.docker.containers[cid].name if cid in self.docker.containers else cid
        self.d.healing.on_docker(
            ContainerEvent(action, cid, service, name, status, signal, exit_code)
        )

    def command(self, **fields: str) -> dict[str, Any]:
        """Send a command through the stream and return its result document."""
        from sidecar.core.types import Incoming

        entry = self.store.add_command(**fields)
        raw = dict(self.store.stream)[entry]
        self.store.delivered.add(entry)
        self.d.queue.put(Incoming(entry, raw))
        self.settle()
        result = self.store.results.get(fields.get("id", entry))
        assert result is not None, f"no result for {fields}; events: {self.store.events[-5:]}"
        return result

    # --- what a user would check -----------------------------------------------------------
    def rotation(self, service: str) -> list[str]:
        return self.store.rotations.get(service, [])

    def healthy_urls(self, service: str) -> list[str]:
        return sorted(
            f"http://{next(iter(i.ips.values()))}:8080"
            for i in self.docker.running(service)
            if i.id not in self.prober.unhealthy
        )

    def builds(self, service: str) -> int:
        return sum(1 for what, arg in self.docker.calls if what == "build" and arg == service)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "ws")
    w.root.mkdir()
    yield w
