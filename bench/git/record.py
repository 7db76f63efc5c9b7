"""Drives one daemon following a git remote through N pushes under load and records each push
as plain data (see `analyse` for the shape): the times around the push and the webhook, the
sidecar's events stream from just before it, and every request of the load through Traefik."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Json
from bench.git.analyse import OTHER, SERVICE, builds
from testkit.docker import dockerd_identity
from testkit.git import Remote, push_hook
from testkit.http_api import Api
from testkit.load import Load
from testkit.sidecar import Sidecar, converged, served
from testkit.traefik import Traefik
from testkit.wait import free_port, wait_for
from testkit.workspace import IMAGE_LABEL, Workspace, project_images

SECRET = "bench-hook-secret"
TOKEN = "bench"
REPLICAS = {SERVICE: 2, OTHER: 1}
RATE = 50.0  # requests per second through Traefik, during each push
WARMUP = 0.5  # the load runs this long before the push
# after the rollout's `job-finished` and the new version served alone, the load goes on this
# long: longer than Traefik's provider throttle (2 s), so what the proxy still does because
# of the rollout is counted
TAIL = 2.5
PUSH_TIMEOUT = 120.0
START_TIMEOUT = 120.0
WEBHOOK, POLL = "webhook", "poll"


def stream_key(project: str) -> str:
    return f"sidecar:{project}:events"


def entries_after(sc: Sidecar, after: str) -> list[tuple[str, dict[str, str]]]:
    """Entries of the events stream newer than the id `after` ("0-0": all)."""
    raw: Any = sc.r.xrange(stream_key(sc.ws.name), min=after)
    out = [(str(i), {str(k): str(v) for k, v in f.items()}) for i, f in raw or []]
    return [(i, f) for i, f in out if i != after]


def last_id(sc: Sidecar) -> str:
    raw: Any = sc.r.xrevrange(stream_key(sc.ws.name), count=1)
    return str(raw[0][0]) if raw else "0-0"


def git_state(sc: Sidecar) -> dict[str, str]:
    return {str(k): str(v) for k, v in sc.r.hgetall(f"sidecar:{sc.ws.name}:git").items()}


class Phase:
    """One daemon following its own bare remote: `webhook` (git_updates=webhook, the GitHub
    hook sent after each push) or `poll` (git_updates=poll every `poll_s`)."""

    def __init__(
        self, mode: str, base: Path, logs: Path, redis_url: str, traefik: Traefik, poll_s: float
    ) -> None:
        self.mode = mode
        self.redis_url = redis_url
        self.poll_s = poll_s
        self.traefik = traefik
        self.project = f"benchgit{mode[0]}{uuid.uuid4().hex[:8]}"
        root = base / mode
        self.ws = Workspace(root / "ws", self.project)
        self.remote = Remote(root)
        self.hosts: dict[str, str] = {}
        for svc, replicas in REPLICAS.items():
            self.hosts[svc] = served(self.ws, svc, replicas=replicas)
            # the label lets the clean-up find every image the rebuilds leave behind
            self.ws.services[svc]["build"] = {
                "context": f"./{svc}",
                "labels": {IMAGE_LABEL: self.project},
            }
        self.ws.write_compose()
        self.first = ""
        self.port = free_port()
        settings = {
            "git_updates": mode,
            "git_poll_s": f"{poll_s:g}" if mode == POLL else "3600",
        }
        if mode == WEBHOOK:
            settings |= {
                "http_listen": f"127.0.0.1:{self.port}",
                "http_token": TOKEN,
                "hook_secret": SECRET,
            }
        self.settings = settings
        self.log = logs / f"{self.project}.log"
        self.sc: Sidecar | None = None
        self.api = Api(self.port, TOKEN) if mode == WEBHOOK else None
        self.start_mark = "0-0"

    # --- start and stop -----------------------------------------------------------------
    def start(self) -> float:
        """Publish the workspace as the remote's first commit, start the daemon, wait until
        both services serve v0 through Traefik and it is idle; the seconds that took."""
        t0 = time.monotonic()
        self.first = self.remote.publish(self.ws.root)
        sc = Sidecar(
            self.ws,
            self.redis_url,
            self.log,
            git_remote=self.remote.url,
            **self.settings,
        )
        self.sc = sc
        sc.start()
        wait_for(
            lambda: converged(sc, SERVICE, REPLICAS[SERVICE]) and converged(sc, OTHER, 1),
            START_TIMEOUT,
            "both services serving",
        )
        if self.api is not None:
            wait_for(self.api.up, 15, "the HTTP server")
        wait_for(lambda: git_state(sc).get("last_result") == "up-to-date", 30, "the first look")
        for svc, host in self.hosts.items():
            wait_for(self._serves(host, "v0"), 30, f"{svc} v0 served through Traefik")
        sc.settle()
        self.start_mark = last_id(sc)
        return time.monotonic() - t0

    def _serves(self, host: str, content: str) -> Callable[[], bool]:
        return lambda: self.traefik.get(host) == (200, content)

    def stop(self) -> Json:
        """Stop the daemon, remove its keys, containers, networks and images; what is left
        (should be nothing)."""
        try:
            if self.sc is not None:
                self.sc.stop()
        finally:
            try:
                if self.sc is not None:
                    self.sc.cleanup_keys()
            finally:
                self.ws.cleanup()
        return {
            "containers": self.ws.containers(all_=True),
            "images": sorted(project_images(self.project)),
        }

    # --- pushes -------------------------------------------------------------------------
    def one_push(self, n: int, rng: random.Random) -> Json:
        sc = self.sc
        assert sc is not None
        content = f"v{n}"
        if self.mode == POLL:
            # a push lands anywhere in the poll cycle, not in step with the previous deploy
            time.sleep(rng.uniform(0, self.poll_s))
        mark = last_id(sc)
        dockerd = dockerd_identity()
        record: Json = {"n": n, "content": content, "mode": self.mode}
        with Load(self.traefik, self.hosts[SERVICE], rate=RATE) as load:
            time.sleep(WARMUP)
            record["push_started"] = time.time()
            sha = self.remote.push({f"{SERVICE}/www/index.html": content + "\n"}, f"web {content}")
            record["pushed"] = time.time()
            record["sha"] = sha
            if self.api is not None:
                body, headers = push_hook("github", self.remote, sha, SECRET)
                record["hook_sent"] = time.time()
                answer = self.api.post("/v1/hooks/github", body, token=None, headers=headers)
                record["hook_answered"] = time.time()
                record["hook_status"] = answer.status
                record["hook_answer"] = answer.json()
            self._wait_done(mark, sha, content, load)
            time.sleep(TAIL)
        record["events"] = [list(e) for e in entries_after(sc, mark)]
        record["samples"] = [[s.at, s.status, s.body, s.seconds] for s in load.samples]
        record["dockerd_restarted"] = dockerd_identity() != dockerd
        record["version_commit"] = self.deployed_commit(SERVICE)
        sc.settle()
        return record

    def _wait_done(self, mark: str, sha: str, content: str, load: Load) -> None:
        """Until the rollout of web's build for `sha` finished and only `content` is served."""
        sc = self.sc
        assert sc is not None
        deadline = time.monotonic() + PUSH_TIMEOUT
        while time.monotonic() < deadline:
            if sc.proc is not None and sc.proc.poll() is not None:
                raise RuntimeError(f"the sidecar exited:\n{sc.log_tail()}")
            events = [f for _, f in entries_after(sc, mark)]
            # the first build of web since the push (whether its reason names the commit
            # or not: see analyse.push_figures)
            started = next(
                (
                    i
                    for i, e in enumerate(events)
                    if e.get("event") == "build-started" and e.get("service") == SERVICE
                ),
                None,
            )
            finished = started is not None and any(
                e.get("event") == "job-finished" and e.get("service") == SERVICE
                for e in events[started:]
            )
            if finished and load.bodies(since=time.time() - 0.5) == {content}:
                return
            time.sleep(0.02)
        raise RuntimeError(f"push {sha[:12]} ({content}) not live in {PUSH_TIMEOUT:g}s")

    def deployed_commit(self, service: str) -> str:
        """The commit the service's current version record names ('' when none)."""
        assert self.sc is not None
        r, project = self.sc.r, self.project
        number = r.get(f"sidecar:{project}:version:{service}")
        raw = r.hget(f"sidecar:{project}:versions:{service}", str(number)) if number else None
        return str(json.loads(str(raw)).get("commit", "")) if raw else ""

    def other_builds(self) -> int:
        """build-started events of the never-changed service since the start-up settled."""
        assert self.sc is not None
        return builds((f for _, f in entries_after(self.sc, self.start_mark)), OTHER)
