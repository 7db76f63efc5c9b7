"""Drives the real parts of the failover benchmark and records each trial as plain data:
the requests of both streams, both Traefiks' access logs, the docker events, the rotation
list's keyspace notifications and the sidecar's events around the action."""

from __future__ import annotations

import random
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.failover.analyse import (
    PATH_A,
    PATH_B,
    PROJECT_LABEL,
    Json,
    analyse_trial,
    provider_triggers,
    throttle_hold,
)
from bench.failover.fixture import PORT, REPLICAS, SERVICE
from bench.failover.report import trial_line
from testkit.load import OpenLoad
from testkit.recorders import DockerEventLog, ListWatch
from testkit.sidecar import Sidecar
from testkit.traefik import Traefik
from testkit.wait import run
from testkit.workspace import Workspace

CLEAN_SECONDS = 2.0  # both streams without a failure, all instances answering, this long
# Traefik applies a provider's new configuration at once, then holds the next one back until
# providersThrottleDuration (2 s) has passed. A trial starts only when neither proxy changed
# its servers for longer than that, so no trial inherits the previous trial's hold-back.
PROXY_QUIET = 2.5
STABLE_TIMEOUT = 90.0
# other projects on a shared host keep Traefik's Docker provider busy; wait this much at most
HOST_NOISE_WAIT = 15.0
MAX_EXTRA_TRIALS = 5  # attempts beyond --trials, to replace trials disturbed from outside
# what a record keeps from before the action: more than the throttle model can look back
# (a trial starts only when both throttles are free) and the 2 s of requests it reports
LOOKBACK = 30.0
ATTRS = ("name", "signal", PROJECT_LABEL, "com.docker.compose.service")


@dataclass
class Bench:
    ws: Workspace
    sc: Sidecar
    events: DockerEventLog
    watch: ListWatch
    proxies: dict[str, Traefik]
    services: dict[str, str]  # path -> Traefik's name of the service, with @provider
    retry_attempts: int = 0
    streams: dict[str, OpenLoad] = field(default_factory=dict)
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
            servers = proxy.servers(self.services[key])
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
            if any(not s.ok for s in recent):
                return False, f"stream {key} had failures in the last {CLEAN_SECONDS:g} s"
            if {s.body for s in recent} != hosts:
                return False, f"stream {key} not answered by exactly the running instances"
        return self.throttles_free(now)

    def throttles_free(self, now: float) -> tuple[bool, str]:
        """Neither proxy's provider throttle would hold a message back now (modelled, see
        `analyse.throttle_exposure`), so no trial inherits the previous one's messages.
        Messages that other containers of the host cause (b) are waited for at most
        HOST_NOISE_WAIT."""
        pa = self.proxies[PATH_A].started_at
        if throttle_hold([pa] + [n.at for n in list(self.watch.notices)], now) > 0:
            return False, "traefik a: provider throttle still busy with the sidecar's publishes"
        pb = self.proxies[PATH_B].started_at
        events = provider_triggers([_event(e) for e in self.events.between(pb, now)], pb, now)
        own = [pb] + [e["at"] for e in events if e["attrs"].get(PROJECT_LABEL) == self.ws.name]
        if throttle_hold(own, now) > 0:
            return False, "traefik b: provider throttle still busy with this project's events"
        busy = throttle_hold([pb] + [e["at"] for e in events], now) > 0
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


def _event(e: Any) -> Json:
    return {
        "at": e.at,
        "action": e.action,
        "container": e.container,
        "attrs": {k: v for k, v in e.attrs.items() if k in ATTRS},
    }


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


def record_trial(b: Bench, action: str, n: int, rng: random.Random) -> Json:
    """`docker <action>` of one instance serving on both paths, then wait until everything is
    stable again; returns what happened meanwhile, as plain data."""
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
    since = t_action - LOOKBACK
    events = [_event(e) for e in b.events.between(since, t_end + 0.3)]
    started = {e["container"] for e in events if e["action"] == "start"}
    return {
        "trial": n,
        "action": action,
        "retry_attempts": b.retry_attempts,
        "project": b.ws.name,
        "replicas": REPLICAS,
        "lookback_s": LOOKBACK,
        "ids": ids,
        "victim": victim,
        "victim_name": name,
        "victim_url": victim_url,
        "t_action": t_action,
        "t_cli": t_cli,
        "t_end": t_end,
        "cli_ok": done.returncode == 0,
        "stable": ok,
        "unstable_reason": why,
        "docker_gap": b.events.gap_during(t_action - 1.0, t_end),
        "proxy_started": {k: p.started_at for k, p in b.proxies.items()},
        "docker_events": events,
        "urls": {c: b.url(c) for c in sorted(started - set(ids))},
        "notices": [asdict(x) for x in list(b.watch.notices) if x.at >= since],
        "requests": {
            k: [[r.sent, r.done, r.status, r.body] for r in s.between(t_action - 2.0, t_end + 1)]
            for k, s in b.streams.items()
        },
        "access": {
            k: [[a.start, a.end, a.url, a.status] for a in p.access() if a.start >= t_action - 2]
            for k, p in b.proxies.items()
        },
        "sidecar_logged_lag_s": sidecar_logged_lag(b.sc.log, name),
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


def phase(
    b: Bench, action: str, trials: int, rng: random.Random, records: list[Json]
) -> tuple[list[Json], str]:
    """`trials` undisturbed trials (at most MAX_EXTRA_TRIALS more attempts for disturbed
    ones): their figures, and why the phase was aborted ("" when it was not). Each trial's
    record is appended to `records`."""
    print(
        f"\n== docker {action}, retry attempts {b.retry_attempts}: {trials} trials ==", flush=True
    )
    out: list[Json] = []
    ok, why = b.wait_stable(STABLE_TIMEOUT)
    if not ok:
        return out, f"not stable before the first {action} trial: {why}"
    valid = 0
    while valid < trials and len(out) < trials + MAX_EXTRA_TRIALS:
        rec = record_trial(b, action, len(out) + 1, rng)
        records.append(rec)
        result = analyse_trial(rec)
        out.append(result)
        print(trial_line(result), flush=True)
        if result["disturbed"]:
            print(f"    DISTURBED, not counted: {result['disturbed']}", flush=True)
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
