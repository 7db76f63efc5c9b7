"""The reference stack end to end: `scripts/stack.sh up` on a copy of the repository brings up
compose/compose.yaml unmodified (Redis, Traefik, the sidecar in its container, two served
services), with local stand-ins for the base images (nothing is pulled). Through Traefik on a
loopback port, under steady load: an edit is served with 0 failed requests, a scale command
through Redis brings up an instance that serves (a relative bind mount included, though the
sidecar that made it runs in a container), a Redis restart is survived, and `down` in the
middle of a rollout leaves nothing behind. The slowest test of the suite: `-m "not stack"`
skips it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from testkit.http import Entry, get_url
from testkit.http_api import Api
from testkit.load import Load
from testkit.redis_server import read_events
from testkit.wait import free_port, wait_for
from testkit.workspace import remove_images

REPO = Path(__file__).resolve().parents[2]
COPIED = ("pyproject.toml", "README.md", "Dockerfile", ".dockerignore", "sidecar", "scripts")
MOTD = "motd from a relative bind mount"
# the base images scripts/stand-in-images.sh builds where nothing can be pulled
STAND_INS = ("traefik:v3.7", "redis:7", "busybox:1.36", "python:3.11-slim")
# the uid of each `sidecar run` process in the container (the owner of its /proc entry)
DAEMON_UIDS = """
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        comm = open(f"/proc/{pid}/comm").read().strip()
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(bytes(1))
    except OSError:
        continue
    if comm == "sidecar" and b"run" in argv:
        print(os.stat(f"/proc/{pid}").st_uid)
"""

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1500)]


@dataclass
class Stack:
    root: Path
    project: str
    env: dict[str, str]
    entry: Entry
    r: redis.Redis
    log: Path

    def script(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        with self.log.open("a") as out:
            return subprocess.run(
                ["bash", str(self.root / "scripts" / "stack.sh"), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )

    def compose(self, *args: str) -> str:
        proc = subprocess.run(
            ["docker", "compose", "-f", str(self.root / "compose" / "compose.yaml"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return proc.stdout

    def rotation(self, service: str) -> list[str]:
        try:
            urls = self.r.lrange(f"sidecar:{self.project}:rotation:{service}", 0, -1)
            return [str(u) for u in urls]
        except redis.RedisError:
            return []

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()

    def health(self, container: str) -> str:
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Health.Status}}", container],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip()

    def events(self, kind: str, service: str) -> list[dict[str, str]]:
        try:
            return read_events(self.r, self.project, kind, service)
        except redis.RedisError:
            return []

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        found = {}
        for kind, cmd in {
            "containers": ["docker", "ps", "-aq", "--filter", label],
            "networks": ["docker", "network", "ls", "-q", "--filter", label],
            "volumes": ["docker", "volume", "ls", "-q", "--filter", label],
        }.items():
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            found[kind] = out.split()
        return found


def _image_exists(ref: str) -> bool:
    proc = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False)
    return proc.returncode == 0


def _copy_repo(root: Path) -> None:
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    # the stack as committed, without files a developer's own run left behind
    shutil.copytree(REPO / "compose", root / "compose", ignore=shutil.ignore_patterns(".env"))


@pytest.fixture
def stack(docker_ready: None, tmp_path: Path) -> Iterator[Stack]:
    # readable by the sidecar's non-root user (tmp_path's parents are private to root)
    root = Path(tempfile.mkdtemp(prefix="sidecar-stack-"))
    root.chmod(0o755)
    _copy_repo(root)
    project = f"sctstack{uuid.uuid4().hex[:6]}"
    ports = {k: str(free_port()) for k in ("HTTP", "DASHBOARD", "REDIS", "SIDECAR")}
    had = {ref for ref in STAND_INS if _image_exists(ref)}
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": project,
        # the project's own sidecar image: a developer's compose-sidecar:latest keeps its tag
        "STACK_SIDECAR_IMAGE": f"{project}-sidecar:latest",
        "STACK_HTTP_PORT": ports["HTTP"],
        "STACK_DASHBOARD_PORT": ports["DASHBOARD"],
        "STACK_REDIS_PORT": ports["REDIS"],
        "STACK_SIDECAR_PORT": ports["SIDECAR"],
        "SIDECAR_HTTP_TOKEN": f"token-{uuid.uuid4().hex}",
        "SIDECAR_STAND_INS": "1",  # local stand-ins for the base images; nothing is pulled
        # the copy has no .venv of its own: stack.sh makes the wheels with this interpreter
        "PYTHON": sys.executable,
    }
    r = redis.Redis(port=int(ports["REDIS"]), decode_responses=True, socket_timeout=5)
    st = Stack(root, project, env, Entry(int(ports["HTTP"])), r, tmp_path / "stack.log")
    try:
        up = st.script("up")
        assert up.returncode == 0, "scripts/stack.sh up failed:\n" + st.log.read_text()[-6000:]
        yield st
    finally:
        st.script("down", timeout=180)
        # every image compose built for the project (web, api, the sidecar), with the ones the
        # sidecar's rebuilds superseded, and the stand-in base images this test had to build
        remove_images(project)
        made = [ref for ref in STAND_INS if ref not in had and _image_exists(ref)]
        if made:  # no -f: an image some container still uses stays
            subprocess.run(["docker", "rmi", *made], capture_output=True, check=False)
        r.close()
        shutil.rmtree(root, ignore_errors=True)


def _scale(st: Stack, service: str, replicas: int) -> dict[str, object]:
    cid = uuid.uuid4().hex
    st.r.xadd(
        f"sidecar:{st.project}:commands",
        {"action": "scale", "service": service, "replicas": str(replicas), "id": cid},
    )
    raw = wait_for(lambda: st.r.get(f"sidecar:{st.project}:result:{cid}"), 120, "scale result")
    result: dict[str, object] = json.loads(str(raw))
    return result


def test_reference_stack_end_to_end(stack: Stack) -> None:
    st = stack
    # --- up: the sidecar runs non-root in its container, both services served by Traefik
    infra = {svc: "".join(st.containers(svc)) for svc in ("sidecar", "redis", "traefik")}
    assert all(infra.values()), infra
    # the daemon left root: the workspace (a root-owned, world-readable copy) is read as 10001
    uids = st.compose("exec", "-T", "sidecar", "python3", "-c", DAEMON_UIDS).split()
    assert uids == ["10001"], uids
    assert st.entry.get("web.localhost") == (200, "<h1>hello from web v1</h1>")
    assert st.entry.get("api.localhost")[0] == 200
    wait_for(lambda: len(st.rotation("web")) == 2, 60, "web's two instances in the rotation")
    assert len(st.rotation("api")) == 2
    # the HTTP API, published on loopback: every request but the page needs the token
    api = Api(int(st.env["STACK_SIDECAR_PORT"]), st.env["SIDECAR_HTTP_TOKEN"])
    wait_for(api.up, 60, "the sidecar's HTTP API")
    assert api.get("/v1/status", token=None).status == 401
    status = api.get("/v1/status").json()
    assert set(status["services"]) >= {"web", "api"} and status["threads"]["http"] == "running"
    assert api.get("/", token=None).status == 200

    # --- an edit is served through Traefik with 0 failed requests
    page = st.root / "compose" / "app" / "web" / "www" / "index.html"

    def builds() -> list[dict[str, str]]:
        return [e for e in st.events("job-finished", "web") if e.get("job") == "build"]

    before = len(builds())
    with Load(st.entry, "web.localhost", rate=50) as load:
        time.sleep(1)
        page.write_text("<h1>hello from web v2</h1>\n")
        edited = time.time()
        job = wait_for(lambda: builds()[before:], 180, "web's build and rollout")[0]
        done = time.time()
        time.sleep(2)
    assert load.failures() == [], f"failed requests during the redeploy: {load.failures()[:5]}"
    assert job["result"] == "ok", job
    assert {s.body for s in load.samples if s.at > done} == {"<h1>hello from web v2</h1>"}
    urls = st.rotation("web")
    assert len(urls) == 2 and {get_url(u) for u in urls} == {"<h1>hello from web v2</h1>"}
    print(f"edit to rollout done: {done - edited:.1f}s, {len(load.samples)} requests, 0 failed")

    # --- scale api through Redis: the new instance serves, its relative bind mount too
    serving = set(st.rotation("api"))
    result = _scale(st, "api", 3)
    assert result["ok"] is True, result
    wait_for(lambda: len(st.rotation("api")) == 3, 60, "api's third instance in the rotation")
    (new_url,) = set(st.rotation("api")) - serving
    assert get_url(new_url + "/shared/motd.txt") == MOTD
    assert st.entry.get("api.localhost", "/shared/motd.txt") == (200, MOTD)

    # --- Redis restarts empty: routing continues and the rotation is re-published
    with Load(st.entry, "web.localhost", rate=50) as load:
        time.sleep(1)
        restarted = time.time()
        st.compose("restart", "redis")
        wait_for(lambda: len(st.rotation("web")) == 2, 60, "web's rotation re-published")
        wait_for(lambda: len(st.rotation("api")) == 3, 60, "api's rotation re-published")
        republished = time.time()
        time.sleep(3)
    failed = load.failures(since=restarted)
    print(
        f"redis restart: rotation re-published after {republished - restarted:.1f}s, "
        f"{len(failed)} of {len(load.samples)} requests failed"
    )
    assert st.r.config_get("notify-keyspace-events")["notify-keyspace-events"] != ""
    assert load.failures(since=republished + 2.5) == [], "routing did not recover"
    assert st.entry.get("api.localhost", "/shared/motd.txt") == (200, MOTD)
    assert st.containers("sidecar"), "the sidecar died"

    # the image's HEALTHCHECK (`sidecar check`) says healthy
    wait_for(lambda: st.health(infra["sidecar"]) == "healthy", 60, "a healthy sidecar", 1.0)
    # the sidecar never touched itself, Redis (restarted by hand, same container) or Traefik
    assert {svc: "".join(st.containers(svc)) for svc in infra} == infra

    # --- down in the middle of a rollout leaves no container, network or volume behind: the
    # sidecar (stopped first) starts no instance once stopping and removes one it was starting
    page.write_text("<h1>hello from web v3</h1>\n")
    wait_for(lambda: len(st.containers("web")) > 2, 60, "a new web instance (mid-rollout)", 0.02)
    down = st.script("down", timeout=180)
    assert down.returncode == 0, st.log.read_text()[-3000:]
    assert st.leftovers() == {"containers": [], "networks": [], "volumes": []}
