"""The Redis adapter: state, hash cache, events stream, heartbeat. Owns every Redis call the
daemon makes; key names come from `keys.py`. Transient connection errors are retried with
backoff (tenacity), then surfaced as `StoreUnavailable` so the daemon keeps running."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import redis
from loguru import logger
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from sidecar import __version__
from sidecar.adapters.retries import log_attempt
from sidecar.core.errors import StoreUnavailable
from sidecar.core.keys import Keys, TraefikKeys
from sidecar.core.model import Project
from sidecar.core.serving import RetrySpec
from sidecar.core.versions import Version

T = TypeVar("T")
Field = bytes | bytearray | memoryview | str | int | float  # what redis-py accepts as a value
_CHUNK = 5000
_FIELD_MAX = 4000  # cap on free-text fields (build log tails) written to Redis
_DELETED = "-"  # a sync record's value for a file deleted in the containers


GROUP = "sidecar"  # the consumer group reading the command stream
CONSUMER = "sidecar"  # one daemon per project: a fixed name finds its own pending entries


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=1,
        health_check_interval=10,
    )


class Store:
    def __init__(
        self, client: redis.Redis, keys: Keys, events_maxlen: int = 1000, attempts: int = 3
    ) -> None:
        self.r = client
        self.keys = keys
        self.events_maxlen = events_maxlen
        self.available = True
        # commands are read as bytes: a non-UTF-8 field must become a clear error, not a crash
        kwargs = {**client.connection_pool.connection_kwargs, "decode_responses": False}
        pool = client.connection_pool
        self.raw = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )
        self._retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            # transient: the connection; anything else (WRONGTYPE, NOSCRIPT) is permanent
            retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
            before_sleep=log_attempt("redis call", attempts, lambda e: type(e).__name__),
            reraise=True,
        )

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one Redis operation with retries. Once Redis is known to be away every call
        fails at once (no reconnect storm, no blocked loop) until `probe` sees it back."""
        if not self.available:
            raise StoreUnavailable("redis is unavailable")
        try:
            return self._retrying(fn)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if self.available:
                logger.error(
                    "redis unavailable: {}; running on, writes resume when it is back",
                    type(exc).__name__,
                )
            self.available = False
            raise StoreUnavailable(str(exc)) from exc

    def probe(self) -> bool:
        """One quick PING; True (and available again) when Redis answers."""
        try:
            self.r.ping()
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        self.available = True
        return True

    # --- liveness ------------------------------------------------------------------------
    def heartbeat(self, started: float, ttl_s: float, threads: Mapping[str, str]) -> bool:
        """Refresh the heartbeat, with each supervised thread's state. True when the sentinel
        key was missing: this Redis has not seen us before, or lost its data (restart
        without persistence, FLUSHALL)."""
        info = json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": started,
                "at": time.time(),
                "version": __version__,
                "threads": dict(threads),
            }
        )

        def write() -> bool:
            pipe = self.r.pipeline(transaction=False)
            pipe.set(self.keys.heartbeat, info, px=int(ttl_s * 1000))
            pipe.set(self.keys.sentinel, info, nx=True)
            return bool(pipe.execute()[1])

        return self._call(write)

    def clear_heartbeat(self) -> None:
        self._call(lambda: self.r.delete(self.keys.heartbeat))

    # --- project model -------------------------------------------------------------------
    def publish_project(self, project: Project, workspace: str) -> None:
        def write() -> None:
            pipe = self.r.pipeline(transaction=True)
            pipe.delete(self.keys.services)
            if project.services:
                pipe.sadd(self.keys.services, *project.services)
            for svc in project.services.values():
                pipe.hset(
                    self.keys.service(svc.name),
                    mapping={
                        "context": svc.context or "",
                        "dockerfile": svc.dockerfile or "",
                        "image": svc.image or (f"{project.name}-{svc.name}" if svc.built else ""),
                        "watched": "1" if svc.built else "0",
                        "served": "1" if svc.served else "0",
                        "replicas": str(svc.replicas) if svc.served else "",
                    },
                )
            pipe.hset(
                self.keys.project_info,
                mapping={
                    "workspace": workspace,
                    "compose_files": ",".join(project.compose_files),
                    "loaded_at": f"{time.time():.3f}",
                    "load_error": "",
                },
            )
            pipe.execute()

        self._call(write)

    def project_load_failed(self, error: str) -> None:
        self._call(lambda: self.r.hset(self.keys.project_info, "load_error", error[-_FIELD_MAX:]))

    def forget_service(self, name: str) -> None:
        def write() -> None:
            pipe = self.r.pipeline(transaction=True)
            pipe.srem(self.keys.services, name)
            pipe.delete(
                self.keys.service(name),
                self.keys.hashes(name),
                self.keys.synced(name),
                self.keys.sync_gens(name),
            )
            pipe.execute()

        self._call(write)

    def record_build(self, service: str, fields: Mapping[str, Any]) -> None:
        mapping: dict[Field, Field] = {k: str(v)[-_FIELD_MAX:] for k, v in fields.items()}
        self._call(lambda: self.r.hset(self.keys.service(service), mapping=mapping))

    # --- events --------------------------------------------------------------------------
    def event(self, kind: str, service: str = "", **fields: Any) -> None:
        entry: dict[Field, Field] = {"event": kind, "service": service, "at": f"{time.time():.3f}"}
        entry.update({k: str(v)[-_FIELD_MAX:] for k, v in fields.items()})
        self._call(
            lambda: self.r.xadd(
                self.keys.events, entry, maxlen=self.events_maxlen, approximate=True
            )
        )

    # --- deployed versions ---------------------------------------------------------------
    def last_version(self, service: str) -> Version | None:
        def read() -> Any:
            number = self.r.get(self.keys.version(service))
            return self.r.hget(self.keys.versions(service), str(number)) if number else None

        raw = self._call(read)
        try:
            return Version.from_dict(json.loads(str(raw))) if raw else None
        except (ValueError, TypeError, AttributeError):
            return None  # an unreadable record: numbering goes on from what the daemon knows

    def versions(self, service: str) -> list[Version]:
        """The service's kept version records, oldest first (unreadable ones left out)."""
        raw = self._call(lambda: self.r.hgetall(self.keys.versions(service)))
        out = []
        for text in cast(dict[Any, Any], raw).values():
            try:
                out.append(Version.from_dict(json.loads(str(text))))
            except (ValueError, TypeError, AttributeError):
                continue
        return sorted(out, key=lambda v: v.version)

    def record_version(self, version: Version, keep: int) -> None:
        """The record, the counter and the trim of the oldest kept record, in one MULTI."""
        n = version.version

        def write() -> None:
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(self.keys.versions(version.service), str(n), version.to_json())
            pipe.set(self.keys.version(version.service), n)
            if n - keep > 0:
                pipe.hdel(self.keys.versions(version.service), str(n - keep))
            pipe.execute()

        self._call(write)

    # --- hash cache ----------------------------------------------------------------------
    def has_hashes(self, service: str) -> bool:
        return bool(self._call(lambda: self.r.exists(self.keys.hashes(service))))

    def all_hashes(self, service: str) -> dict[str, str]:
        raw = self._call(lambda: self.r.hgetall(self.keys.hashes(service)))
        return {str(k): str(v) for k, v in raw.items()}

    def get_hashes(self, service: str, rels: Iterable[str]) -> dict[str, str | None]:
        names = list(rels)
        if not names:
            return {}
        values = self._call(lambda: self.r.hmget(self.keys.hashes(service), names))
        return dict(zip(names, values, strict=True))  # type: ignore[arg-type]

    def commit_hashes(self, service: str, updates: Mapping[str, str | None]) -> None:
        """Apply digest updates (None = the file is gone) atomically."""
        key = self.keys.hashes(service)
        sets = {k: v for k, v in updates.items() if v is not None}
        dels = [k for k, v in updates.items() if v is None]

        def write() -> None:
            pipe = self.r.pipeline(transaction=True)
            items = list(sets.items())
            for i in range(0, len(items), _CHUNK):
                pipe.hset(key, mapping=dict(items[i : i + _CHUNK]))
            for i in range(0, len(dels), _CHUNK):
                pipe.hdel(key, *dels[i : i + _CHUNK])
            # an empty context still needs a marker that it was scanned
            pipe.hset(key, "", "")
            pipe.execute()

        self._call(write)

    def hashes_under(self, service: str, prefix: str) -> list[str]:
        """Known files below a directory (relative path prefix ending in `/`)."""
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        key = self.keys.hashes(service)
        return self._call(lambda: [k for k, _ in self.r.hscan_iter(key, match=pattern)])

    # --- develop.watch sync records ------------------------------------------------------
    def sync_record(self, service: str) -> tuple[dict[str, str | None], int, dict[str, int]]:
        def read() -> tuple[dict[str, str], dict[str, str]]:
            pipe = self.r.pipeline(transaction=False)
            pipe.hgetall(self.keys.synced(service))
            pipe.hgetall(self.keys.sync_gens(service))
            files, gens = pipe.execute()
            return files, gens

        files, gens = self._call(read)
        record: dict[str, str | None] = {
            str(k): (None if v == _DELETED else str(v)) for k, v in files.items()
        }
        gen = int(gens.pop("gen", 0) or 0)
        return record, gen, {str(k): int(v) for k, v in gens.items() if str(v).isdigit()}

    def save_sync_record(
        self,
        service: str,
        files: Mapping[str, str | None],
        gen: int,
        containers: Mapping[str, int],
        whole: bool,
    ) -> None:
        """Write the changed entries (or, `whole`, replace the record) and the generations."""
        key, gens = self.keys.synced(service), self.keys.sync_gens(service)
        items = [(k, _DELETED if v is None else v) for k, v in files.items()]
        mapping: dict[Field, Field] = {"gen": gen, **{k: v for k, v in containers.items()}}

        def write() -> None:
            pipe = self.r.pipeline(transaction=True)
            if whole:
                pipe.delete(key)
            for i in range(0, len(items), _CHUNK):
                pipe.hset(key, mapping=dict(items[i : i + _CHUNK]))
            pipe.delete(gens)
            pipe.hset(gens, mapping=mapping)
            pipe.execute()

        self._call(write)

    # --- rotation ------------------------------------------------------------------------
    def enable_keyspace_events(self) -> None:
        """Traefik's provider watches keyspace events; it does not re-enable them after a
        Redis restart (traefik#6832), so the sidecar sets them on every (re)connect."""
        try:
            current = str(
                self._call(lambda: self.r.config_get("notify-keyspace-events")).get(
                    "notify-keyspace-events", ""
                )
            )
            wanted = "".join(sorted(set(current) | set("KEA")))
            if set(wanted) != set(current):
                self._call(lambda: self.r.config_set("notify-keyspace-events", wanted))
        except redis.ResponseError as exc:  # CONFIG disabled (managed Redis): say so once
            logger.warning(
                "cannot enable keyspace notifications ({}); set "
                "notify-keyspace-events KEA in redis.conf for Traefik",
                exc,
            )

    def publish_instances(self, service: str, instances: Mapping[str, str]) -> None:
        """Only the instance table (the routing did not change)."""
        key = self.keys.instances(service)

        def write() -> None:
            pipe = self.r.pipeline(transaction=True)
            pipe.delete(key)
            if instances:
                table: dict[Field, Field] = {str(k): v for k, v in instances.items()}
                pipe.hset(key, mapping=table)
            pipe.execute()

        self._call(write)

    def publish_rotation(
        self,
        service: str,
        urls: list[str],
        instances: Mapping[str, str],
        traefik: TraefikKeys,
        rule: str,
        entrypoints: tuple[str, ...],
        retry: RetrySpec | None = None,
    ) -> None:
        """Write the rotation list, the instance table and Traefik's keys in one MULTI/EXEC,
        so no reader sees a half-written set. Within it the service's servers and its retry
        middleware are written before its router, and an empty rotation deletes the router
        before the servers. Without `retry` (or with 0 attempts) no middleware is left."""
        servers_prefix = traefik.lb_servers(service) + "/"
        router = traefik.router(service)

        def write() -> None:
            stale = [
                k
                for k in self.r.scan_iter(match=_glob_escape(servers_prefix) + "*", count=500)
                if _server_index(str(k), servers_prefix) >= len(urls)
            ]
            stale += [
                k
                for k in self.r.scan_iter(match=_glob_escape(router + "/entrypoints/") + "*")
                if not urls or _server_index(str(k), router + "/entrypoints/") >= len(entrypoints)
            ]
            pipe = self.r.pipeline(transaction=True)
            if not urls:
                pipe.delete(router + "/rule", router + "/service")
            if stale:
                pipe.delete(*stale)
            for i, url in enumerate(urls):
                pipe.set(traefik.server_url(service, i), url)
            _retry_keys(pipe, traefik, service, retry if urls else None)
            if urls:
                pipe.set(router + "/service", traefik.name(service))
                for i, ep in enumerate(entrypoints):
                    pipe.set(f"{router}/entrypoints/{i}", ep)
                pipe.set(router + "/rule", rule)
            key = self.keys.rotation(service)
            pipe.delete(key)
            if urls:
                pipe.rpush(key, *urls)
            pipe.delete(self.keys.instances(service))
            if instances:
                table: dict[Field, Field] = {str(k): v for k, v in instances.items()}
                pipe.hset(self.keys.instances(service), mapping=table)
            pipe.execute()

        self._call(write)

    # --- git delivery --------------------------------------------------------------------
    def newest_entry(self, stream: str) -> str:
        """A stream's newest entry id ('0-0' when empty): a reader starts after it."""
        newest = self._call(lambda: self.r.xrevrange(stream, "+", "-", count=1))
        return str(cast(list[Any], newest)[0][0]) if newest else "0-0"

    def read_entries(
        self, stream: str, after: str, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        """A stream's entries after `after` (the hubs), waiting up to `block_ms` for one."""
        resp = self._call(lambda: self.r.xread({stream: after}, count=100, block=block_ms))
        return [
            (str(entry_id), {str(k): str(v) for k, v in fields.items()})
            for _stream, entries in cast(list[Any], resp) or []
            for entry_id, fields in entries
        ]

    def record_drift(self, report: Mapping[str, str], at: float) -> None:
        """The last drift check, whole: service -> JSON Drift, and `at`."""
        mapping: dict[Field, Field] = {k: v for k, v in report.items()}
        mapping["at"] = f"{at:.3f}"

        def write() -> None:
            pipe = self.r.pipeline(transaction=True)
            pipe.delete(self.keys.drift)
            pipe.hset(self.keys.drift, mapping=mapping)
            pipe.execute()

        self._call(write)

    def record_git(self, fields: Mapping[str, str]) -> None:
        mapping: dict[Field, Field] = {k: str(v)[-_FIELD_MAX:] for k, v in fields.items()}
        self._call(lambda: self.r.hset(self.keys.git, mapping=mapping))

    # --- commands ------------------------------------------------------------------------

    def ensure_group(self) -> None:
        try:
            self._call(
                lambda: self.r.xgroup_create(self.keys.commands, GROUP, id="0", mkstream=True)
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_commands(self, pending: bool, block_ms: int) -> list[tuple[str, dict[Any, Any]]]:
        """Entries for our consumer: its own unacknowledged ones first (`pending`), then new."""
        stream_id = "0" if pending else ">"
        resp = self._call(
            lambda: self.raw.xreadgroup(
                GROUP,
                CONSUMER,
                {self.keys.commands: stream_id},
                count=50,
                block=None if pending else block_ms,
            )
        )
        out = []
        for _stream, entries in cast(list[Any], resp) or []:
            for entry_id, fields in entries:
                out.append((entry_id.decode(), dict(fields or {})))
        return out

    def finish_command(
        self, entry_id: str, command_id: str, result: Mapping[str, Any], ttl_s: int
    ) -> None:
        """Write the result, then acknowledge: a crash in between re-delivers the command,
        and its id finds the result already there (harmless repeat)."""
        blob = json.dumps(dict(result), sort_keys=True)

        def write() -> None:
            pipe = self.r.pipeline(transaction=True)
            pipe.set(self.keys.result(command_id), blob, ex=ttl_s)
            pipe.xack(self.keys.commands, GROUP, entry_id)
            pipe.execute()

        self._call(write)

    def ack_command(self, entry_id: str) -> None:
        self._call(lambda: self.r.xack(self.keys.commands, GROUP, entry_id))

    def command_result(self, command_id: str) -> dict[str, Any] | None:
        raw = self._call(lambda: self.r.get(self.keys.result(command_id)))
        return dict(json.loads(str(raw))) if raw else None

    def paused_members(self) -> set[str]:
        return {str(m) for m in self._call(lambda: self.r.smembers(self.keys.paused))}

    def set_paused_members(self, members: set[str]) -> None:
        """Replace the paused set in one transaction (empty: the key is deleted)."""

        def write() -> None:
            pipe = self.r.pipeline(transaction=True)
            pipe.delete(self.keys.paused)
            if members:
                pipe.sadd(self.keys.paused, *sorted(members))
            pipe.execute()

        self._call(write)

    def set_desired(self, service: str, replicas: int | None) -> None:
        key = self.keys.desired(service)
        self._call(lambda: self.r.delete(key) if replicas is None else self.r.set(key, replicas))

    def all_desired(self, services: Iterable[str]) -> dict[str, int]:
        names = list(services)
        if not names:
            return {}
        values = self._call(lambda: self.r.mget([self.keys.desired(s) for s in names]))
        return {n: int(v) for n, v in zip(names, values, strict=True) if v is not None}


def _retry_keys(
    pipe: redis.client.Pipeline, traefik: TraefikKeys, service: str, retry: RetrySpec | None
) -> None:
    """The retry middleware, the servers transport with its dial timeout, and the router's and
    service's references to them; or none of these. Deleting keys that do not exist sends
    Traefik no keyspace notification, so an unchanged "no retry" costs nothing."""
    ref = traefik.router_middleware(service, 0)
    interval = traefik.retry_initial_interval(service)
    transport = traefik.lb_servers_transport(service)
    dial = traefik.dial_timeout(service)
    if retry is None or not retry.enabled:
        pipe.delete(ref, transport, traefik.retry_attempts(service), interval, dial)
        return
    pipe.set(traefik.retry_attempts(service), retry.attempts)
    if retry.initial_interval is None:
        pipe.delete(interval)
    else:
        pipe.set(interval, f"{retry.initial_interval:g}s")  # a Go duration
    pipe.set(dial, f"{retry.dial_timeout:g}s")
    pipe.set(transport, traefik.name(service))
    pipe.set(ref, traefik.name(service))


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _server_index(key: str, prefix: str) -> int:
    try:
        return int(key[len(prefix) :].split("/", 1)[0])
    except ValueError:
        return 1 << 30  # not ours to keep: remove
