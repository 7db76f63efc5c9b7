from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.redis_server import RedisServer
from testkit.sidecar import Sidecar
from testkit.traefik import Traefik
from testkit.workspace import Workspace

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/integration carries the `integration` marker, so `-m
    integration` and `-m "not integration"` select by it (a `pytestmark` in a conftest.py
    applies to nothing). The hook sees the whole session's items: mark only ours."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker_ready() -> None:
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail("no Docker engine answers: run scripts/setup-host.sh first\n" + proc.stderr)
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if compose.returncode != 0:
        pytest.fail("the docker compose plugin is missing: run scripts/setup-host.sh first")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workspace(
    request: pytest.FixtureRequest, tmp_path: Path, docker_ready: None
) -> Iterator[Workspace]:
    slug = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:20]
    ws = Workspace(tmp_path / "ws", f"sct{slug}{uuid.uuid4().hex[:6]}")
    yield ws
    ws.cleanup()


SidecarFactory = Callable[..., Sidecar]


@pytest.fixture
def sidecar(
    workspace: Workspace, redis_server: RedisServer, tmp_path: Path
) -> Iterator[SidecarFactory]:
    made: list[Sidecar] = []

    def make(**settings: str) -> Sidecar:
        sc = Sidecar(workspace, redis_server.url, tmp_path / "sidecar.log", **settings)
        made.append(sc)
        return sc

    yield make
    for sc in made:
        sc.stop()
        sc.cleanup_keys()


@pytest.fixture
def traefik(redis_server: RedisServer, tmp_path: Path) -> Iterator[Traefik]:
    proxy = Traefik(redis_server.port, tmp_path / "traefik.log")
    proxy.start()
    yield proxy
    proxy.stop()
