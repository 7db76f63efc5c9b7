"""Failover benchmark: how fast an instance that is killed or stopped leaves the rotation,
through the sidecar's Redis publication (Traefik's Redis provider) compared with Traefik's
own Docker provider, on the same containers at the same time.

The fixture is one served service `app` (3 replicas, busybox httpd FROM scratch, `init:
true`). Each instance writes its hostname (the container id prefix) into its index page, so
every response says which instance answered. On SIGTERM it kills httpd at once (connections
are refused from then on) but exits only 3 s later, like an application that shuts down
slowly.

Two routing paths, each with a steady open-loop stream of requests (50/s, a fresh connection
per request, 1 s timeout, Host: app.bench):

- (a) Traefik #1, Redis provider, reading what `python -m sidecar run` publishes;
- (b) Traefik #2, Docker provider, on the same containers (compose labels `traefik.*`).

Trials: `--trials` `docker kill` (SIGKILL) and as many `docker stop` on one serving instance
each, under the load. Between trials the sidecar replaces the instance, both proxies route
to exactly the three running instances and have not changed that for 2.5 s (more than
Traefik's 2 s provider throttle), and both streams are answered by all three without a
failure for 2 s. Measured per trial and path from the first docker event of the action
(`docker events`, timeNano): when the last request reached the victim (Traefik's access
log), the last response it served and the first failed request, failed requests until the
path is stable again, and for (a) when the victim's URL left the Redis list (keyspace
notification, then LRANGE to confirm).

Run from the repository root: `python3 -m bench.failover [--trials 10] [--json F]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    REPO,
    Json,
    environment,
    fmt,
    median,
    results_dir,
    table,
    verdict,
    write_json,
)
from testkit.redis_server import RedisServer
from testkit.sidecar import Sidecar
from testkit.traefik import Traefik
from testkit.wait import run
from testkit.workspace import IMAGE_LABEL, Workspace, remove_images

SERVICE = "app"
PROJECT_LABEL = "com.docker.compose.project"
HOST = "app.bench"
PORT = 8080
REPLICAS = 3
SIGTERM_GRACE = 3  # seconds the fixture takes to exit after SIGTERM (httpd is gone at once)
REQUEST_TIMEOUT = 1.0
CLEAN_SECONDS = 2.0  # both streams without a failure, all instances answering, this long
# Traefik applies a provider's new configuration at once, then holds the next one back until
# providersThrottleDuration (2 s) has passed. A trial starts only when neither proxy changed
# its servers for longer than that, so no trial inherits the previous trial's hold-back.
PROXY_QUIET = 2.5
STABLE_TIMEOUT = 90.0
THROTTLE = 2.0  # Traefik's providersThrottleDuration (default), the same for both proxies
# other projects on a shared host keep Traefik's Docker provider busy; wait this much at most
HOST_NOISE_WAIT = 15.0
MAX_EXTRA_TRIALS = 5  # attempts beyond --trials, to replace trials disturbed from outside
START_TIMEOUT = 180.0
REDIS_TARGET_S = 0.100
# The sidecar runs with its defaults: kills and stops by hand are not crashes (they used to
# be, which needed crash_window_s=1 here); `--sidecar-setting NAME=VALUE` overrides any.
SIDECAR_DEFAULTS: dict[str, str] = {}
PATH_A = "a"
PATH_B = "b"
PATH_LABELS = {
    PATH_A: "(a) sidecar -> Redis -> Traefik",
    PATH_B: "(b) Traefik docker provider",
}

SERVE_SH = f"""# The instance names itself (hostname = container id prefix) in every response.
/bin/busybox hostname > /www/index.html
# SIGTERM: stop accepting connections at once (httpd is killed), exit {SIGTERM_GRACE} s later.
trap '/bin/busybox kill $pid; /bin/busybox sleep {SIGTERM_GRACE}; exit 0' TERM
/bin/busybox httpd -f -p {PORT} -h /www &
pid=$!
# a trapped signal interrupts `wait`, so the trap runs at once
wait $pid
"""
# --serve-during-shutdown: a graceful application, still answering for its whole shutdown
GRACEFUL_TRAP = f"trap '/bin/busybox sleep {SIGTERM_GRACE}; /bin/busybox kill $pid; exit 0' TERM"

DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
COPY www /www
COPY serve.sh /serve.sh
ENTRYPOINT ["/bin/busybox", "sh", "/serve.sh"]
"""


# --- docker events: one process for the whole run -------------------------------------------
@dataclass(frozen=True)
class DockerEvent:
    at: float  # dockerd's timeNano, as unix seconds
    received: float
    action: str
    container: str
    name: str
    attrs: dict[str, str]


class EventLog:
    """`docker events --format '{{json .}}'` for every container of the host, parsed in a
    thread. The project's events time the trials; the others matter too: Traefik's Docker
    provider re-lists the containers on every start, die and health_status of any container
    of the host, and each re-list is a provider message that takes its 2 s throttle slot."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.events: list[DockerEvent] = []
        # (stream lost, stream back): dockerd went away (e.g. restarted) and took the stream
        self.gaps: list[tuple[float, float | None]] = []
        self.proc: subprocess.Popen[str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[str]:
        self.proc = subprocess.Popen(
            ["docker", "events", "--format", "{{json .}}", "--filter", "type=container"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return self.proc

    def _run(self) -> None:
        proc = self.proc
        while proc is not None and not self._stop.is_set():
            self._read(proc)
            proc.wait()
            if self._stop.is_set():
                return
            self.gaps.append((time.time(), None))
            while not self._stop.wait(1.0):  # reconnect once dockerd answers again
                proc = self._spawn()
                try:
                    proc.wait(0.5)  # exits at once while the daemon is away
                except subprocess.TimeoutExpired:
                    self.gaps[-1] = (self.gaps[-1][0], time.time())
                    break

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            received = time.time()
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue
            actor = raw.get("Actor") or {}
            attrs = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
            self.events.append(
                DockerEvent(
                    at=int(raw.get("timeNano") or 0) / 1e9,
                    received=received,
                    action=str(raw.get("Action") or raw.get("status") or ""),
                    container=str(raw.get("id") or actor.get("ID") or ""),
                    name=attrs.get("name", ""),
                    attrs=attrs,
                )
            )

    def stop(self) -> None:
        self._stop.set()
        self._terminate(self.proc)
        self._thread.join(5)
        self._terminate(self.proc)  # one a reconnect spawned meanwhile

    @staticmethod
    def _terminate(proc: subprocess.Popen[str] | None) -> None:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def gap_during(self, since: float, until: float) -> bool:
        return any(lost <= until and (back is None or back >= since) for lost, back in self.gaps)

    def of(self, container: str, since: float) -> list[DockerEvent]:
        return [e for e in list(self.events) if e.container == container and e.at >= since]

    def first_start_after(self, since: float, exclude: set[str]) -> DockerEvent | None:
        for e in list(self.events):
            if (
                e.action == "start"
                and e.at >= since
                and e.container not in exclude
                and e.attrs.get(PROJECT_LABEL) == self.project
            ):
                return e
        return None

    def provider_triggers(self, since: float, until: float) -> list[DockerEvent]:
        """Events of any container that make Traefik's Docker provider send a message."""
        return [
            e
            for e in list(self.events)
            if since <= e.at < until
            and (e.action in ("start", "die") or e.action.startswith("health_status"))
        ]


# --- Redis keyspace notifications on the rotation list --------------------------------------
@dataclass(frozen=True)
class Notice:
    at: float  # when the notification arrived here
    op: str  # del, rpush...
    urls: tuple[str, ...]  # the list read right after it


class RotationWatch:
    """Subscribes to `__keyspace@0__:<rotation key>`; timestamps each notification and reads
    the list right after it (a MULTI/EXEC is applied whole before its notifications go out)."""

    def __init__(self, url: str, key: str) -> None:
        self.key = key
        self.sub = redis.Redis.from_url(url, decode_responses=True)
        self.reader = redis.Redis.from_url(url, decode_responses=True)
        self.notices: list[Notice] = []
        self._stop = threading.Event()
        self._pubsub = self.sub.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, name="keyspace", daemon=True)

    def start(self) -> None:
        self._pubsub.subscribe(f"__keyspace@0__:{self.key}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._pubsub.get_message(timeout=0.5)
            if not msg or msg.get("type") != "message":
                continue
            at = time.time()
            urls = tuple(str(u) for u in self.reader.lrange(self.key, 0, -1))
            self.notices.append(Notice(at, str(msg.get("data")), urls))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()
        self.sub.close()
        self.reader.close()

    def urls(self) -> list[str]:
        return [str(u) for u in self.reader.lrange(self.key, 0, -1)]


# --- the two proxies --------------------------------------------------------------------------
class Proxy(Traefik):
    """A Traefik process on loopback ports, with the given provider flags and a JSON access
    log (which backend URL each request went to). Both proxies get identical flags otherwise."""

    def __init__(
        self, label: str, provider: list[str], service: str, logs: Path, log_level: str
    ) -> None:
        access = logs / f"traefik-{label}-access.log"
        super().__init__(0, logs / f"traefik-{label}.log", log_level, access)
        self.label = label
        self.provider = provider
        self.service = service  # Traefik's name of the service, with @provider

    def provider_args(self) -> list[str]:
        return self.provider

    def routed(self) -> tuple[str, ...]:
        return self.servers(self.service)

    def log_entries(self) -> list[tuple[float, float, str, int]]:
        return [(a.start, a.end, a.url, a.status) for a in self.access()]


# --- load --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    start: float
    end: float
    status: int  # 0: no HTTP answer (refused, reset, timeout)
    body: str  # the instance's hostname, or the error


class Stream:
    """Steady GETs through one proxy, a fresh connection each (bounded in time).

    Open loop: a request is started every 1/rate s whatever the earlier ones do, so a request
    hanging until its 1 s timeout does not pause the stream (a closed loop would send fewer
    requests, and count fewer failures, on whichever path hangs). At most rate x timeout
    requests are in flight."""

    def __init__(self, port: int, rate: float, max_seconds: float) -> None:
        self.port = port
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.samples: list[Sample] = []
        self.skipped = 0  # ticks with every worker busy (should stay 0)
        self._stop = threading.Event()
        self._workers = int(rate * REQUEST_TIMEOUT) + 8
        self._slots = threading.Semaphore(self._workers)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=f"load-{port}")
        self._thread = threading.Thread(target=self._run, name=f"tick-{port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _get(self) -> None:
        try:
            start = time.time()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
            try:
                conn.request("GET", "/", headers={"Host": HOST})
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace").strip()
                sample = Sample(start, time.time(), resp.status, body)
            except (OSError, http.client.HTTPException) as exc:
                sample = Sample(start, time.time(), 0, type(exc).__name__)
            finally:
                conn.close()
            self.samples.append(sample)
        finally:
            self._slots.release()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._slots.acquire(blocking=False):
                self._pool.submit(self._get)
            else:
                self.skipped += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def between(self, since: float, until: float) -> list[Sample]:
        return [s for s in list(self.samples) if since <= s.start <= until]


# --- the run -----------------------------------------------------------------------------------
@dataclass
class Bench:
    ws: Workspace
    sc: Sidecar
    events: EventLog
    watch: RotationWatch
    proxies: dict[str, Proxy]
    streams: dict[str, Stream] = field(default_factory=dict)
    ips: dict[str, str] = field(default_factory=dict)  # container id -> address
    # proxy -> (its servers, when they were first seen so)
    proxy_seen: dict[str, tuple[tuple[str, ...], float]] = field(default_factory=dict)
    wait_started: float = 0.0

    def running(self) -> list[str]:
        """Full ids of the service's running containers."""
        out = run(
            "docker",
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={self.ws.name}",
            "--filter",
            f"label=com.docker.compose.service={SERVICE}",
            timeout=30,
        ).stdout
        return out.split()

    def url(self, cid: str) -> str:
        """The instance's URL on the project network ("" once it is gone)."""
        if cid not in self.ips:
            nets = (self.ws.inspect(cid).get("NetworkSettings") or {}).get("Networks") or {}
            ip = str((nets.get(f"{self.ws.name}_default") or {}).get("IPAddress") or "")
            if not ip:
                return ""
            self.ips[cid] = ip
        return f"http://{self.ips[cid]}:{PORT}"

    def stable(self, now: float) -> tuple[bool, str]:
        """Replicas running, rotation and both proxies on exactly them (the proxies unchanged
        for PROXY_QUIET), sidecar idle, and both streams clean for CLEAN_SECONDS with every
        instance answering."""
        ids = self.running()
        if len(ids) != REPLICAS:
            return False, f"{len(ids)} running"
        urls = {self.url(c) for c in ids}
        if set(self.watch.urls()) != urls:
            return False, "rotation list differs from the running instances"
        changed = ""
        for key, proxy in self.proxies.items():
            servers = proxy.routed()
            if self.proxy_seen.get(key, ((), 0.0))[0] != servers:
                self.proxy_seen[key] = (servers, now)
            if set(servers) != urls:
                changed = f"traefik {key} servers differ from the running instances"
            elif now - self.proxy_seen[key][1] < PROXY_QUIET:
                changed = f"traefik {key} changed its servers less than {PROXY_QUIET:g} s ago"
        if changed:
            return False, changed
        if not self.sc.idle():
            return False, "sidecar job in flight"
        hosts = {c[:12] for c in ids}
        for key, stream in self.streams.items():
            recent = stream.between(now - CLEAN_SECONDS, now)
            if any(s.status != 200 for s in recent):
                return False, f"stream {key} had failures in the last {CLEAN_SECONDS:g} s"
            if {s.body for s in recent} != hosts:
                return False, f"stream {key} not answered by exactly the running instances"
        return self.throttles_free(now)

    def throttles_free(self, now: float) -> tuple[bool, str]:
        """Neither proxy's provider throttle would hold a message back now (modelled, see
        `throttle_exposure`), so no trial inherits the previous one's messages. Messages that
        other containers of the host cause (b) are waited for at most HOST_NOISE_WAIT."""
        pa = self.proxies[PATH_A].started_at
        if throttle_hold([pa] + [n.at for n in list(self.watch.notices)], now) > 0:
            return False, "traefik a: provider throttle still busy with the sidecar's publishes"
        pb = self.proxies[PATH_B].started_at
        events = self.events.provider_triggers(pb, now)
        own = [pb] + [e.at for e in events if e.attrs.get(PROJECT_LABEL) == self.ws.name]
        if throttle_hold(own, now) > 0:
            return False, "traefik b: provider throttle still busy with this project's events"
        busy = throttle_hold([pb] + [e.at for e in events], now) > 0
        if busy and now - self.wait_started < HOST_NOISE_WAIT:
            return False, "traefik b: provider throttle busy with other containers' events"
        return True, ""

    def wait_stable(self, timeout: float) -> tuple[bool, str]:
        self.wait_started = time.time()
        deadline = time.monotonic() + timeout
        why = ""
        while time.monotonic() < deadline:
            if self.sc.proc is not None and self.sc.proc.poll() is not None:
                return False, f"the sidecar exited:\n{self.sc.log_tail()}"
            if self.sc.events("service-failed", SERVICE):
                return False, "the sidecar marked the service failed (crash loop)"
            ok, why = self.stable(time.time())
            if ok:
                return True, ""
            time.sleep(0.2)
        return False, f"not stable within {timeout:g} s: {why}"


def first_event(events: list[DockerEvent]) -> DockerEvent | None:
    ends = [e for e in events if e.action in ("kill", "die", "stop", "pause")]
    return min(ends, key=lambda e: e.at) if ends else None


def path_figures(
    b: Bench,
    key: str,
    victim: str,
    victim_url: str,
    t_action: float,
    t_ev: float,
    t_end: float,
    replaced_at: float | None,
) -> Json:
    stream = b.streams[key]
    window = stream.between(t_action, t_end)
    host = victim[:12]
    served = [s.end for s in stream.between(t_action - 2.0, t_end) if s.body == host]
    failed = [s for s in window if s.status != 200]
    kinds: dict[str, int] = {}
    for s in failed:
        kind = str(s.status) if s.status else s.body
        kinds[kind] = kinds.get(kind, 0) + 1
    # Traefik's own record of where each request went (its access log). The replacement
    # often gets the victim's address back: requests to that address from the replacement's
    # start on are the replacement's.
    limit = min(replaced_at if replaced_at is not None else t_end, t_end)
    routed: list[float] = []
    after = False
    by_backend: dict[str, int] = {}
    for start, _, url, status in b.proxies[key].log_entries():
        if url == victim_url and t_action - 2.0 <= start < limit:
            routed.append(start)
        if url == victim_url and replaced_at is not None and limit <= start < limit + 0.2:
            after = True
        if t_action <= start <= t_end and status != 200:
            if not url:
                who = "none"
            elif url == victim_url:
                who = "victim" if start < limit else "replacement (same address)"
            else:
                who = "other"
            by_backend[who] = by_backend.get(who, 0) + 1
    # requests to the address went on into the replacement's start
    handed_over = after and bool(routed) and max(routed) >= limit - 0.2
    return {
        "requests": len(window),
        "failed": len(failed),
        "failed_kinds": kinds,
        "failed_by_backend_access_log": by_backend,
        "last_routed_to_victim_s": max(routed) - t_ev if routed else None,
        # True: Traefik never stopped sending to the victim's address before the replacement
        # took that address over; last_routed_to_victim_s is then a lower bound
        "routed_until_replacement_took_address": handed_over,
        "routed_to_victim_after_event": sum(1 for r in routed if r >= t_ev),
        "last_served_by_victim_s": max(served) - t_ev if served else None,
        "first_failure_s": min(s.start for s in failed) - t_ev if failed else None,
        "last_failure_s": max(s.end for s in failed) - t_ev if failed else None,
    }


def redis_figures(
    b: Bench, victim_url: str, t_action: float, t_ev: float, replaced_at: float | None
) -> Json:
    """When the victim's URL left the rotation list: the first keyspace notification after
    the action whose list, read right after it, no longer holds the URL. Also whether it came
    back before its replacement started (the replacement may get the same address)."""
    before = [n for n in list(b.watch.notices) if n.at < t_action]
    notices = [n for n in list(b.watch.notices) if n.at >= t_action]
    removed = next((n for n in notices if victim_url not in n.urls), None)
    rejoined = back = None
    if removed is not None:
        rejoined = next(
            (n for n in notices if n.at >= removed.at and len(n.urls) == REPLICAS), None
        )
        limit = replaced_at if replaced_at is not None else float("inf")
        back = next(
            (n for n in notices if removed.at < n.at < limit and victim_url in n.urls), None
        )
    return {
        "victim_back_in_rotation_s": back.at - t_ev if back else None,
        "removed_s": removed.at - t_ev if removed else None,
        "removed_op": removed.op if removed else None,
        "listed_before": bool(before) and victim_url in before[-1].urls,
        "list_after_removal": list(removed.urls) if removed else None,
        "rotation_full_again_s": rejoined.at - t_ev if rejoined else None,
        "timeline": [
            (round(n.at - t_ev, 4), n.op, len(n.urls), victim_url in n.urls) for n in notices
        ],
    }


def throttle_hold(triggers: list[float], at: float, period: float = THROTTLE) -> float:
    """How long Traefik holds back a provider message sent at `at`, given the provider's
    earlier messages at `triggers`. Traefik v3 (`maybeThrottledProvide`) publishes a message,
    sleeps `period`, then publishes the latest one that arrived meanwhile, if any: changed
    or not, every message takes a slot."""
    free_at = float("-inf")  # when the next message may go out
    pending = False
    for t in sorted(x for x in triggers if x < at):
        if pending and free_at <= t:  # the held one went out at free_at
            free_at, pending = free_at + period, False
        if t >= free_at:
            free_at = t + period
        else:
            pending = True
    if pending and free_at <= at:
        free_at += period
    return max(0.0, free_at - at)


def throttle_exposure(
    b: Bench, victim: str, removed_at: float | None, die: DockerEvent | None
) -> Json:
    """Traefik's provider throttle, modelled from what each provider reacts to:
    (a) the Redis provider sends a message for every keyspace notification under its root,
    and every sidecar publish (one MULTI/EXEC, also when only the instance table changed)
    rewrites the Traefik keys: several notifications, so one message at once and one more
    2 s later; (b) the Docker provider sends one for every start, die and health_status of
    any container of the host. Hold-back of the message that removes the victim."""
    out: Json = {}
    if removed_at is not None:
        pa = b.proxies[PATH_A].started_at
        triggers = [pa] + [n.at for n in list(b.watch.notices) if pa <= n.at < removed_at]
        out["a_hold_s"] = throttle_hold(triggers, removed_at)
        out["a_messages_in_4s_before"] = sum(1 for t in triggers if t >= removed_at - 4.0)
    if die is not None:
        pb = b.proxies[PATH_B].started_at
        events = [
            e
            for e in b.events.provider_triggers(pb, die.at)
            if not (e.container == victim and e.action == "die")
        ]
        out["b_hold_s"] = throttle_hold([pb] + [e.at for e in events], die.at)
        recent = [e for e in events if e.at >= die.at - 4.0]
        out["b_messages_in_4s_before"] = len(recent)
        out["b_messages_of_other_projects_in_4s_before"] = sum(
            1 for e in recent if e.attrs.get(PROJECT_LABEL) != b.ws.name
        )
    return out


def sidecar_logged_lag(log: Path, name: str) -> float | None:
    """The sidecar's own figure: '<svc>: <name> left the rotation on <action> (X ms after the
    event' (informational; the benchmark's figure comes from Redis)."""
    pattern = re.compile(re.escape(name) + r" left the rotation on \w+ \(([-\d.]+) ms after")
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    found = pattern.findall(text)
    return float(found[-1]) / 1000 if found else None


def trial(b: Bench, action: str, n: int, rng: random.Random) -> Json:
    ids = b.running()
    now = time.time()
    serving = {
        c
        for c in ids
        if all(
            any(s.body == c[:12] for s in st.between(now - CLEAN_SECONDS, now))
            for st in b.streams.values()
        )
    }
    victim = rng.choice(sorted(serving or set(ids)))
    victim_url = b.url(victim)
    name = str(b.ws.inspect(victim).get("Name", "")).lstrip("/")
    t_action = time.time()
    done = run("docker", action, victim, timeout=60)
    t_cli = time.time()
    ok, why = b.wait_stable(STABLE_TIMEOUT)
    t_end = time.time()
    time.sleep(0.3)  # the last access-log lines and events
    evs = b.events.of(victim, t_action - 1.0)
    first = first_event(evs)
    t_ev = first.at if first else t_action
    start = b.events.first_start_after(t_action, set(ids))
    replaced_at = start.at if start else None
    die = next((e for e in evs if e.action == "die"), None)
    removed = redis_figures(b, victim_url, t_action, t_ev, replaced_at)["removed_s"]
    exposure = throttle_exposure(b, victim, t_ev + removed if removed is not None else None, die)
    # Something else on the host can end instances too (another job restarting dockerd...):
    # such a trial measures that, not the failover, and is not counted.
    disturbed = []
    if b.events.gap_during(t_action - 1.0, t_end):
        disturbed.append("the docker daemon went away during the trial (restarted?)")
    others = set(ids) - {victim}
    hit = sorted(
        {
            e.container[:12]
            for e in list(b.events.events)
            if e.container in others
            and t_action <= e.at <= t_end
            and e.action in ("kill", "die", "stop", "pause", "destroy")
        }
    )
    if hit:
        disturbed.append(f"instances other than the victim ended: {', '.join(hit)}")
    out: Json = {
        "trial": n,
        "action": action,
        "victim": victim[:12],
        "victim_name": name,
        "victim_url": victim_url,
        "cli_ok": done.returncode == 0,
        "cli_seconds": t_cli - t_action,
        "event_at": t_ev,
        "action_to_event_s": t_ev - t_action,
        "first_event": f"{first.action} signal={first.attrs.get('signal', '')}" if first else None,
        "victim_events": [(e.action, round(e.at - t_ev, 4)) for e in evs],
        "die_s": die.at - t_ev if die else None,
        "throttle_exposure": exposure,
        "replacement_start_s": replaced_at - t_ev if replaced_at else None,
        "replacement": start.container[:12] if start else None,
        "replacement_url": b.url(start.container) if start else None,
        "stable": ok,
        "disturbed": "; ".join(disturbed),
        "stable_after_s": t_end - t_ev,
        "unstable_reason": why,
        "paths": {
            key: path_figures(b, key, victim, victim_url, t_action, t_ev, t_end, replaced_at)
            for key in b.streams
        },
        "redis": redis_figures(b, victim_url, t_action, t_ev, replaced_at),
        "sidecar_logged_lag_s": sidecar_logged_lag(b.sc.log, name),
        # what the sidecar itself recorded meanwhile (its events stream)
        "sidecar_events": [
            {
                k: v[:200]
                for k, v in e.items()
                if k in ("event", "at", "instance", "reason", "error")
            }
            for e in b.sc.events()
            if t_action <= float(e.get("at", 0)) <= t_end
        ],
    }
    pa, pb = out["paths"][PATH_A], out["paths"][PATH_B]
    print(
        f"  {action} {n}: {victim[:12]} | redis removal {fmt(out['redis']['removed_s'], ' s')}"
        f" | last routed a {fmt(pa['last_routed_to_victim_s'])} b "
        f"{fmt(pb['last_routed_to_victim_s'])} s | failed a {pa['failed']} b {pb['failed']}"
        f" | stable after {fmt(out['stable_after_s'], ' s')}{'' if ok else ' NOT STABLE'}",
        flush=True,
    )
    if disturbed:
        print(f"    DISTURBED, not counted: {out['disturbed']}", flush=True)
    return out


def phase(b: Bench, action: str, trials: int, rng: random.Random) -> tuple[list[Json], str]:
    """`trials` undisturbed trials (at most MAX_EXTRA_TRIALS more attempts for disturbed ones)."""
    print(f"\n== docker {action}: {trials} trials ==", flush=True)
    out: list[Json] = []
    ok, why = b.wait_stable(STABLE_TIMEOUT)
    if not ok:
        return out, f"not stable before the first {action} trial: {why}"
    valid = 0
    while valid < trials and len(out) < trials + MAX_EXTRA_TRIALS:
        result = trial(b, action, len(out) + 1, rng)
        out.append(result)
        if result["disturbed"]:
            ok, why = (True, "") if result["stable"] else b.wait_stable(2 * STABLE_TIMEOUT)
            if not ok:
                return out, f"not stable again after a disturbed {action} trial: {why}"
            continue
        if not result["stable"]:
            return out, f"{action} trial {len(out)}: {result['unstable_reason']}"
        valid += 1
    if valid < trials:
        return out, f"only {valid} undisturbed {action} trials in {len(out)} attempts"
    return out, ""


# --- fixture -----------------------------------------------------------------------------------
def make_workspace(root: Path, name: str, serve_during_shutdown: bool = False) -> Workspace:
    ws = Workspace(root, name)
    ctx = ws.add_context(SERVICE, "placeholder")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    script = SERVE_SH
    if serve_during_shutdown:
        script = "\n".join(
            GRACEFUL_TRAP if line.startswith("trap ") else line
            for line in script.splitlines()
            if not line.startswith("# SIGTERM")
        )
    (ctx / "serve.sh").write_text(script + "\n")
    router = f"traefik.http.routers.{name}-{SERVICE}"
    labels = {
        "traefik.enable": "true",
        f"{router}.rule": f"Host(`{HOST}`)",
        f"{router}.entrypoints": "web",
        f"traefik.http.services.{name}-{SERVICE}.loadbalancer.server.port": str(PORT),
        "traefik.docker.network": f"{name}_default",
    }
    extra: Json = {
        "build": {"context": f"./{SERVICE}", "labels": {IMAGE_LABEL: name}},
        "labels": labels,
        "x-sidecar": {"port": PORT, "replicas": REPLICAS, "rule": f"Host(`{HOST}`)"},
    }
    ws.add_service(SERVICE, publish=False, **extra)
    ws.write_compose()
    return ws


# --- report ------------------------------------------------------------------------------------
def values(trials: list[Json], path: str, metric: str) -> list[float]:
    return [
        float(t["paths"][path][metric])
        for t in trials
        if counted(t) and t["paths"][path][metric] is not None
    ]


def counted(t: Json) -> bool:
    return bool(t["stable"]) and not t["disturbed"]


def summary(trials: list[Json]) -> Json:
    done = [t for t in trials if counted(t)]
    out: Json = {
        "attempts": len(trials),
        "trials": len(done),
        "disturbed": sum(1 for t in trials if t["disturbed"]),
        "paths": {},
    }
    for path in (PATH_A, PATH_B):
        routed = values(trials, path, "last_routed_to_victim_s")
        served = values(trials, path, "last_served_by_victim_s")
        first = values(trials, path, "first_failure_s")
        out["paths"][path] = {
            "time_to_stop_traffic_median_s": median(routed),
            "time_to_stop_traffic_max_s": max(routed) if routed else None,
            "last_served_median_s": median(served),
            "last_served_max_s": max(served) if served else None,
            "first_failure_median_s": median(first),
            "failed_total": sum(t["paths"][path]["failed"] for t in done),
            "trials_with_failures": sum(1 for t in done if t["paths"][path]["failed"]),
            "requests_in_windows": sum(t["paths"][path]["requests"] for t in done),
            "trials_routed_until_replacement": sum(
                1 for t in done if t["paths"][path]["routed_until_replacement_took_address"]
            ),
        }
    removal = [float(t["redis"]["removed_s"]) for t in done if t["redis"]["removed_s"] is not None]
    out["redis_removal_s"] = removal
    out["redis_removal_median_s"] = median(removal)
    out["redis_removal_max_s"] = max(removal) if removal else None
    out["redis_removal_confirmed"] = sum(
        1 for t in done if t["redis"]["listed_before"] and t["redis"]["removed_s"] is not None
    )
    out["stable_after_median_s"] = median([float(t["stable_after_s"]) for t in done])
    out["victim_back_in_rotation"] = sum(
        1 for t in done if t["redis"]["victim_back_in_rotation_s"] is not None
    )
    out["replacement_start_median_s"] = median(
        [float(t["replacement_start_s"]) for t in done if t["replacement_start_s"] is not None]
    )
    # the proxy's own share: last request to the victim after what it reacts to
    lag_a = [
        float(t["paths"][PATH_A]["last_routed_to_victim_s"]) - float(t["redis"]["removed_s"])
        for t in done
        if t["paths"][PATH_A]["last_routed_to_victim_s"] is not None
        and t["redis"]["removed_s"] is not None
    ]
    lag_b = [
        float(t["paths"][PATH_B]["last_routed_to_victim_s"]) - float(t["die_s"])
        for t in done
        if t["paths"][PATH_B]["last_routed_to_victim_s"] is not None and t["die_s"] is not None
    ]
    out["paths"][PATH_A]["proxy_lag_median_s"] = median(lag_a)
    out["paths"][PATH_B]["proxy_lag_median_s"] = median(lag_b)
    out["paths"][PATH_A]["proxy_lag_max_s"] = max(lag_a) if lag_a else None
    out["paths"][PATH_B]["proxy_lag_max_s"] = max(lag_b) if lag_b else None
    exp = [t["throttle_exposure"] for t in done]
    for path in (PATH_A, PATH_B):
        holds = [float(e[f"{path}_hold_s"]) for e in exp if e.get(f"{path}_hold_s") is not None]
        out["paths"][path]["throttle_hold_median_s"] = median(holds)
        out["paths"][path]["throttle_hold_max_s"] = max(holds) if holds else None
        out["paths"][path]["trials_held_back"] = sum(1 for h in holds if h > 0)
    return out


def report(results: dict[str, Json], trials: int) -> tuple[str, Json]:
    rows: list[list[str]] = []
    for action, res in results.items():
        s = res["summary"]
        a, b = s["paths"][PATH_A], s["paths"][PATH_B]
        n = f"docker {action} ({s['trials']} trials"
        n += f", {s['disturbed']} disturbed not counted)" if s["disturbed"] else ")"
        rows += [
            [n, "", ""],
            [
                "  time to stop traffic, median (s)",
                fmt(a["time_to_stop_traffic_median_s"]),
                fmt(b["time_to_stop_traffic_median_s"]),
            ],
            [
                "  time to stop traffic, max (s)",
                fmt(a["time_to_stop_traffic_max_s"]),
                fmt(b["time_to_stop_traffic_max_s"]),
            ],
            [
                "  routed to it until its address was reused [3]",
                fmt(a["trials_routed_until_replacement"]),
                fmt(b["trials_routed_until_replacement"]),
            ],
            [
                "  last response served by victim, median (s)",
                fmt(a["last_served_median_s"]),
                fmt(b["last_served_median_s"]),
            ],
            [
                "  first failed request, median (s)",
                fmt(a["first_failure_median_s"]),
                fmt(b["first_failure_median_s"]),
            ],
            [
                "  proxy lag after its trigger, median (s) [1]",
                fmt(a["proxy_lag_median_s"]),
                fmt(b["proxy_lag_median_s"]),
            ],
            [
                "  proxy lag after its trigger, max (s) [1]",
                fmt(a["proxy_lag_max_s"]),
                fmt(b["proxy_lag_max_s"]),
            ],
            [
                "  throttle hold-back (model), median (s) [2]",
                fmt(a["throttle_hold_median_s"]),
                fmt(b["throttle_hold_median_s"]),
            ],
            [
                "  throttle hold-back (model), max (s) [2]",
                fmt(a["throttle_hold_max_s"]),
                fmt(b["throttle_hold_max_s"]),
            ],
            ["  failed requests, total", fmt(a["failed_total"]), fmt(b["failed_total"])],
            [
                "  trials with failures",
                fmt(a["trials_with_failures"]),
                fmt(b["trials_with_failures"]),
            ],
            [
                "  requests in the trial windows",
                fmt(a["requests_in_windows"]),
                fmt(b["requests_in_windows"]),
            ],
            ["  Redis removal latency, median (s)", fmt(s["redis_removal_median_s"]), "-"],
            ["  Redis removal latency, max (s)", fmt(s["redis_removal_max_s"]), "-"],
            [
                "  victim put back into the rotation (trials)",
                fmt(s["victim_back_in_rotation"]),
                "-",
            ],
            [
                "  replacement container started, median (s)",
                fmt(s["replacement_start_median_s"]),
                "(same container)",
            ],
        ]
    kill = results.get("kill", {}).get("summary")
    stop = results.get("stop", {}).get("summary")
    targets: Json = {}
    lines = [
        table(
            [
                "metric (times from the first docker event)",
                PATH_LABELS[PATH_A],
                PATH_LABELS[PATH_B],
            ],
            rows,
        ),
        "",
        "targets:",
    ]
    for action, s in (("kill", kill), ("stop", stop)):
        if s is None:
            continue
        count = len(s["redis_removal_s"])
        ok = count >= 10 and s["redis_removal_median_s"] <= REDIS_TARGET_S
        targets[f"redis_removal_median_le_100ms_{action}"] = ok
        lines.append(
            f"  rotation entry removed from Redis within 100 ms ({action}, median of {count}"
            f"{'' if count >= 10 else ', needs >= 10'}): {fmt(s['redis_removal_median_s'])} s"
            f" -> {verdict(ok)}"
        )
    for action, s, cmp in (("kill", kill, "<="), ("stop", stop, "<")):
        if s is None:
            continue
        fa, fb = s["paths"][PATH_A]["failed_total"], s["paths"][PATH_B]["failed_total"]
        complete = s["trials"] >= trials
        ok = complete and (fa <= fb if cmp == "<=" else fa < fb)
        targets[f"failed_a_{'le' if cmp == '<=' else 'lt'}_b_{action}"] = ok
        lines.append(
            f"  failed requests (a) {cmp} (b) after docker {action}: {fa} vs {fb} -> {verdict(ok)}"
        )
    lines += [
        "",
        "notes:",
        "  - time to stop traffic: start of the last request Traefik sent to the victim (its",
        "    access log), answered or not; negative = before the event",
        "  - failed = non-200 or no answer within 1 s, from the action until the path is stable",
        "    again (replacement serving on both paths, 2 s without a failure)",
        "  - [1] last request to the victim minus what the proxy reacts to: (a) the Redis",
        "    removal, (b) the victim's `die` event (the Docker provider ignores `kill`)",
        "  - [2] Traefik publishes a provider's message, then waits 2 s before the next",
        "    (providersThrottleDuration), changed config or not; modelled from what each",
        "    provider reacts to: (a) every sidecar publish (several keyspace notifications),",
        "    (b) every start/die/health_status of any container of the host",
        "  - [3] the replacement usually gets the victim's address back; in these trials",
        "    requests to it went on until then, so the time to stop traffic is a lower bound",
    ]
    return "\n".join(lines), targets


# --- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.failover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=10, help="trials per action (>= 1)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s per stream")
    parser.add_argument("--seed", type=int, default=1, help="victim choice")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    parser.add_argument("--dir", metavar="DIR", help="where to create the fixture (tmp)")
    parser.add_argument(
        "--serve-during-shutdown",
        action="store_true",
        help="fixture variant: keep answering for the whole shutdown after SIGTERM (a graceful "
        "app); shows whether a stopping instance is put back into the rotation. The targets "
        "are defined for the default fixture",
    )
    parser.add_argument(
        "--traefik-log-level", default="INFO", help="both proxies' log level (DEBUG to debug)"
    )
    parser.add_argument(
        "--sidecar-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="sidecar setting SIDECAR_<NAME>, repeatable (default: none)",
    )
    args = parser.parse_args(argv)
    if args.trials < 1 or not 1 <= args.rate <= 200:
        parser.error("--trials must be >= 1 and --rate within 1..200")
    settings = dict(SIDECAR_DEFAULTS)
    settings.update(s.split("=", 1) for s in args.sidecar_setting if "=" in s)

    logs = results_dir("failover")
    base = Path(tempfile.mkdtemp(prefix="bench-failover-", dir=args.dir))
    name = f"benchfo{uuid.uuid4().hex[:6]}"
    env = environment()
    code = {
        "commit": run("git", "rev-parse", "--short", "HEAD", cwd=REPO).stdout.strip(),
        # the sidecar runs from this checkout: uncommitted changes are part of what is measured
        "uncommitted": run("git", "status", "--porcelain", "sidecar", cwd=REPO).stdout.split("\n"),
    }
    code["uncommitted"] = [line for line in code["uncommitted"] if line.strip()]
    print(f"logs: {logs}\nfixture: {base / name}\nproject: {name}", flush=True)
    print(f"sidecar code: {code['commit']}, uncommitted: {code['uncommitted'] or 'none'}")
    redis_server = RedisServer(base)
    ws = make_workspace(base / name, name, args.serve_during_shutdown)
    sc = Sidecar(ws, redis_server.url, logs / "sidecar.log", **settings)
    events = EventLog(name)
    proxies = {
        PATH_A: Proxy(
            PATH_A,
            [f"--providers.redis.endpoints=127.0.0.1:{redis_server.port}"],
            f"{name}-{SERVICE}@redis",
            logs,
            args.traefik_log_level,
        ),
        PATH_B: Proxy(
            PATH_B,
            [
                "--providers.docker=true",
                "--providers.docker.exposedbydefault=false",
                # only this project's containers, whatever else runs on the host
                f"--providers.docker.constraints=Label(`com.docker.compose.project`,`{name}`)",
            ],
            f"{name}-{SERVICE}@docker",
            logs,
            args.traefik_log_level,
        ),
    }
    watch: RotationWatch | None = None
    bench: Bench | None = None
    results: dict[str, Json] = {}
    aborted = ""
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    try:
        redis_server.start()
        events.start()
        sc.start()  # waits for `ready`; the image is built and the instances rolled out
        watch = RotationWatch(redis_server.url, f"sidecar:{name}:rotation:{SERVICE}")
        watch.start()
        for proxy in proxies.values():
            proxy.start()
        bench = Bench(ws, sc, events, watch, proxies)
        max_seconds = 120 + args.trials * 2 * (STABLE_TIMEOUT + 10)
        bench.streams = {k: Stream(p.web_port, args.rate, max_seconds) for k, p in proxies.items()}
        for stream in bench.streams.values():
            stream.start()
        ok, why = bench.wait_stable(START_TIMEOUT)
        if not ok:
            raise RuntimeError(f"the fixture never became stable: {why}\n{sc.log_tail()}")
        print(f"stable after {time.monotonic() - t0:.1f} s; 3 instances on both paths", flush=True)
        for action in ("kill", "stop"):
            trials, aborted = phase(bench, action, args.trials, rng)
            results[action] = {"trials": trials, "summary": summary(trials)}
            if aborted:
                print(f"  ABORTED: {aborted}", flush=True)
                break
    finally:
        if bench is not None:
            for stream in bench.streams.values():
                stream.stop()
        for proxy in proxies.values():
            proxy.stop()
        try:
            sc.stop()
        except AssertionError as exc:
            print(f"sidecar stop: {exc}", file=sys.stderr)
        if watch is not None:
            watch.stop()
        events.stop()
        images = run("docker", "images", "-aq", "--filter", f"label={IMAGE_LABEL}={name}").stdout
        ws.cleanup()
        remove_images(name)
        redis_server.stop()
        shutil.rmtree(base, ignore_errors=True)
        left = run("docker", "images", "-aq", "--filter", f"label={IMAGE_LABEL}={name}").stdout
        print(
            f"\ncleaned up: containers, network, {len(set(images.split()))} images "
            f"({len(left.split())} left), redis, proxies, sidecar",
            flush=True,
        )

    streams_json: dict[str, Any] = {}
    if bench is not None:
        for key, stream in bench.streams.items():
            lat = sorted(s.end - s.start for s in stream.samples if s.status == 200)
            span = max((s.start for s in stream.samples), default=0.0) - min(
                (s.start for s in stream.samples), default=0.0
            )
            streams_json[key] = {
                "requests": len(stream.samples),
                "failed": sum(1 for s in stream.samples if s.status != 200),
                "rate_per_s": len(stream.samples) / span if span else None,
                "latency_median_s": median(lat),
                "latency_p99_s": lat[int(len(lat) * 0.99)] if lat else None,
                "ticks_skipped_all_workers_busy": stream.skipped,
            }
    text, targets = report(results, args.trials)
    print("\n" + text)
    for key, info in streams_json.items():
        print(
            f"  - load {PATH_LABELS[key]}: {info['requests']} requests "
            f"({fmt(info['rate_per_s'])}/s), median latency {fmt(info['latency_median_s'])} s"
        )
    if aborted:
        print(f"\nABORTED: {aborted}")
    write_json(
        args.json,
        {
            "benchmark": "failover",
            "environment": env,
            "sidecar_code": code,
            "logs": str(logs),
            "project": name,
            "settings": {
                "trials": args.trials,
                "rate_per_stream": args.rate,
                "request_timeout_s": REQUEST_TIMEOUT,
                "clean_seconds": CLEAN_SECONDS,
                "proxy_quiet_s": PROXY_QUIET,
                "replicas": REPLICAS,
                "sigterm_grace_s": SIGTERM_GRACE,
                "serve_during_shutdown": args.serve_during_shutdown,
                "seed": args.seed,
                "sidecar_settings": settings,
            },
            "paths": PATH_LABELS,
            "results": results,
            "streams_whole_run": streams_json,
            "aborted": aborted,
            "targets": targets,
            "seconds": time.monotonic() - t0,
        },
    )
    return 1 if aborted else 0


if __name__ == "__main__":
    sys.exit(main())
