"""The endpoints of the HTTP API. Each reads Redis with the server's own asyncio client (the
same keys as the daemon, `core.keys`), never the daemon's state: a slow or broken request
cannot hold the reactor. Commands go through the command stream, so the daemon validates
and executes them exactly as those from `redis-cli` or the CLI."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from loguru import logger
from redis.exceptions import RedisError

from sidecar.adapters.metrics import Metrics
from sidecar.adapters.status import collect_async, verdict
from sidecar.adapters.web.hub import STREAM_ID, Entry, EventHub, Subscription, parse_id
from sidecar.core.keys import Keys
from sidecar.core.versions import Version, is_newer

HEARTBEAT_S = 15.0  # SSE comment lines: proxies and clients see a live connection
WATCH_MAX_S = 300.0  # cap of a long-poll's timeout
WATCH_RECHECK_S = 5.0  # a long-poll re-reads Redis this often even without a wake-up
RESULT_RECHECK_S = 0.5  # a command waiting for its result re-reads it this often
BACKLOG_MAX = 10000  # entries an event stream replays at most (the stream is capped anyway)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class HookConfig:
    """What the webhook endpoints need (settings group `git`)."""

    secret: str = ""  # hook_secret: '' -> the endpoints answer 403
    remote: str = ""  # git_remote: what this sidecar follows ('' -> none)
    branch: str = "main"
    max_body: int = 1024 * 1024
    dedupe_s: int = 7 * 86400
    hub_maxlen: int = 1000
    registry_token: str = ""  # registry_hook_token: '' -> the registry endpoints answer 403
    registry_host: str = ""  # the registry's host:port when a notification does not say


@dataclass
class Context:
    """What the handlers share: one per server (on its event loop)."""

    redis: aioredis.Redis
    hub: EventHub
    keys: Callable[[], Keys]  # the daemon's current keys (the project's name may change)
    metrics: Metrics
    static: Path
    max_sse: int
    max_body: int
    command_wait_s: float
    read_timeout_s: float
    hooks: HookConfig = field(default_factory=HookConfig)
    sse_clients: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def current_keys(self) -> Keys:
        return self.keys()


CTX = web.AppKey("ctx", Context)


class BadRequest(ValueError):
    """The request is malformed: 400 with this message."""


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _redis_down(exc: RedisError) -> web.Response:
    return error(503, f"redis unavailable: {type(exc).__name__}")


# --- status, health ---------------------------------------------------------------------
async def status(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    try:
        state = await collect_async(ctx.redis, ctx.current_keys())
    except RedisError as exc:
        return _redis_down(exc)
    return web.json_response(state)


async def healthz(request: web.Request) -> web.Response:
    """`sidecar check`'s verdict: the heartbeat is fresh and every supervised thread runs."""
    ctx = request.app[CTX]
    try:
        raw = await ctx.redis.get(ctx.current_keys().heartbeat)
    except RedisError as exc:
        ok, message = False, f"unhealthy: redis unreachable: {type(exc).__name__}"
    else:
        ok, message = verdict(raw)
    return web.json_response({"healthy": ok, "message": message}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    # the snapshot takes the daemon's locks: off the event loop
    body = await asyncio.get_running_loop().run_in_executor(None, ctx.metrics.exposition)
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


# --- events (Server-Sent Events) --------------------------------------------------------
def sse_message(entry: Entry) -> bytes:
    entry_id, fields = entry
    kind = fields.get("event", "message").replace("\r", " ").replace("\n", " ") or "message"
    data = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return f"id: {entry_id}\nevent: {kind}\ndata: {data}\n\n".encode()


def stream_start(after: str | None, backlog: str | None) -> tuple[str | None, int]:
    """(resume after this id, or None; how many past entries to replay first)."""
    if after is not None:
        after = after.strip()
        if not STREAM_ID.match(after):
            raise BadRequest(f"not a stream id: {after[:40]!r}")
        return after, 0
    if backlog is None or backlog == "":
        return None, 0
    if not backlog.isdigit():
        raise BadRequest("backlog must be a whole number")
    return None, min(int(backlog), BACKLOG_MAX)


async def events(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    after, backlog = stream_start(
        request.headers.get("Last-Event-ID") or request.query.get("after"),
        request.query.get("backlog"),
    )
    if ctx.sse_clients >= ctx.max_sse:
        return error(503, "too many event streams", limit=ctx.max_sse)
    ctx.sse_clients += 1
    ctx.metrics.event_streams.set(ctx.sse_clients)
    sub = ctx.hub.subscribe()  # before reading the backlog: nothing falls in between
    try:
        key = ctx.current_keys().events
        try:
            if after is not None:
                past: Any = await ctx.redis.xrange(key, f"({after}", "+", count=BACKLOG_MAX)
            elif backlog:
                newest: Any = await ctx.redis.xrevrange(key, "+", "-", count=backlog)
                past = list(reversed(newest or []))
            else:
                past = []
        except RedisError as exc:
            return _redis_down(exc)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx and friends: do not buffer the stream
            }
        )
        await resp.prepare(request)
        entries = [(str(i), {str(k): str(v) for k, v in f.items()}) for i, f in past]
        await _follow(ctx, resp, sub, entries, parse_id(after) if after else None)
        return resp
    finally:
        ctx.hub.unsubscribe(sub)
        ctx.sse_clients -= 1
        ctx.metrics.event_streams.set(ctx.sse_clients)


async def _follow(
    ctx: Context,
    resp: web.StreamResponse,
    sub: Subscription,
    entries: list[Entry],
    last: tuple[int, int] | None,
) -> None:
    """Send the backlog, then live entries, until the client goes, cannot keep up (its
    buffer overflowed, or a write stalls), or the server stops. `last`: the position the
    client resumes after; nothing at or before it is sent (nor anything twice)."""

    async def send(data: bytes) -> None:
        async with asyncio.timeout(ctx.read_timeout_s):  # a client that stopped reading
            await resp.write(data)

    try:
        await send(b": connected\n\n")
        while not ctx.closing.is_set():
            for entry in entries:
                position = parse_id(entry[0])
                if last is None or position > last:
                    await send(sse_message(entry))
                    last = position
            if sub.overflowed:
                logger.info("http: an event stream fell behind; closed (it resumes by id)")
                return
            entries = await sub.take(HEARTBEAT_S)
            if not entries and not sub.overflowed:
                await send(b": keepalive\n\n")
    except (ConnectionResetError, TimeoutError):
        return  # the client went away or stopped reading: nothing to clean but our slot


# --- commands -----------------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


def command_fields(body: bytes) -> dict[str, str]:
    """A POSTed command as stream fields: every value a string; the daemon validates the
    rest exactly as for `XADD`. Raises BadRequest for what is not a JSON object."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("malformed JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    fields = {str(k): _text(v) for k, v in data.items()}
    if not fields.get("id"):
        fields["id"] = uuid.uuid4().hex
    return fields


async def read_body(request: web.Request, ctx: Context, cap: int | None = None) -> bytes:
    """The whole body within the read timeout; 413 above `cap` (http_max_body by default),
    refused from Content-Length before a byte is read, else as soon as it is exceeded."""
    cap = ctx.max_body if cap is None else cap
    length = request.content_length
    if length is not None and length > cap:
        raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=length)
    try:
        async with asyncio.timeout(ctx.read_timeout_s):
            body = bytearray()
            async for chunk in request.content.iter_chunked(65536):
                body += chunk
                if len(body) > cap:
                    raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=len(body))
            return bytes(body)
    except TimeoutError:
        raise web.HTTPRequestTimeout() from None


async def post_command(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    fields = command_fields(await read_body(request, ctx))
    result = await submit(ctx, fields)
    if result is None:
        return web.json_response({"id": fields["id"], "status": "pending"}, status=202)
    if isinstance(result, web.Response):
        return result
    return web.json_response(result)


async def submit(ctx: Context, fields: dict[str, str]) -> dict[str, Any] | web.Response | None:
    """Add a command to the stream and wait (http_command_wait_s) for its result: the result
    document, None when it did not come in time, or the answer when Redis is away."""
    keys = ctx.current_keys()
    ids = {fields["id"]}
    sub = ctx.hub.subscribe(
        lambda f: f.get("event") in ("command-ok", "command-error") and f.get("command") in ids
    )
    try:
        try:
            # shielded: once the body is in, a client that hangs up does not stop the XADD
            entry: Any = fields  # redis-py's own field type
            entry_id = await asyncio.shield(ctx.redis.xadd(keys.commands, entry))
        except RedisError as exc:
            return _redis_down(exc)
        # a command whose id the daemon refuses is answered under its stream entry id
        ids.add(str(entry_id))
        return await _await_result(ctx, keys, sorted(ids), sub, ctx.command_wait_s)
    finally:
        ctx.hub.unsubscribe(sub)


async def drift(request: web.Request) -> web.Response:
    """`GET /v1/drift`: a drift check now (nothing applied), answered with its report."""
    ctx = request.app[CTX]
    fields = {"action": "drift", "id": uuid.uuid4().hex}
    result = await submit(ctx, fields)
    if isinstance(result, web.Response):
        return result
    if result is None:
        return web.json_response({"id": fields["id"], "status": "pending"}, status=202)
    try:
        raw = await ctx.redis.hgetall(ctx.current_keys().drift)
    except RedisError as exc:
        return _redis_down(exc)
    at = raw.pop("at", "")
    services = {str(k): json.loads(str(v)) for k, v in raw.items()}
    body = {"ok": result.get("ok"), "message": result.get("message"), "at": at}
    return web.json_response({**body, "services": services})


async def _await_result(
    ctx: Context, keys: Keys, ids: list[str], sub: Subscription, wait_s: float
) -> dict[str, Any] | None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            found = [r for r in await ctx.redis.mget([keys.result(i) for i in ids]) if r]
        except RedisError:
            found = []  # Redis blinked: the command is in the stream, keep waiting
        if found:
            return dict(json.loads(str(found[0])))
        remaining = deadline - time.monotonic()
        if remaining <= 0 or ctx.closing.is_set():
            return None
        await sub.take(min(remaining, RESULT_RECHECK_S))


async def get_command(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    cid = request.match_info["id"]
    try:
        raw = await ctx.redis.get(ctx.current_keys().result(cid))
    except RedisError as exc:
        return _redis_down(exc)
    if not raw:
        return error(404, "no result for this id (unknown, expired, or still pending)", id=cid)
    return web.json_response(json.loads(str(raw)))


# --- watch (long-poll for a new version) ------------------------------------------------
def watch_params(query: Any) -> tuple[str, int, float]:
    """(service, after, timeout) from `?service=web&after=3&timeout=30`."""
    service = str(query.get("service", ""))
    if not service:
        raise BadRequest("service is required")
    after_text, timeout_text = str(query.get("after", "0")), str(query.get("timeout", "30"))
    if not after_text.isdigit():
        raise BadRequest("after must be a whole number (a version)")
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise BadRequest("timeout must be a number of seconds") from None
    if not 0 <= timeout < float("inf"):
        raise BadRequest("timeout must be a number of seconds")
    return service, int(after_text), min(timeout, WATCH_MAX_S)


async def _newest_version(ctx: Context, keys: Keys, service: str) -> Version | None:
    number = await ctx.redis.get(keys.version(service))
    raw = await ctx.redis.hget(keys.versions(service), str(number)) if number else None
    try:
        return Version.from_dict(json.loads(str(raw))) if raw else None
    except (ValueError, TypeError, AttributeError):
        return None


async def watch(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    service, after, timeout = watch_params(request.query)
    keys = ctx.current_keys()
    sub = ctx.hub.subscribe(
        lambda f: f.get("event") == "deployed" and service in f.get("service", "").split(",")
    )
    try:
        try:
            if not await ctx.redis.sismember(keys.services, service):
                return error(404, f"unknown service {service!r}")
        except RedisError as exc:
            return _redis_down(exc)
        deadline = time.monotonic() + timeout
        while True:
            try:
                newest = await _newest_version(ctx, keys, service)
            except RedisError:
                newest = None  # waited out like a quiet service
            if newest is not None and is_newer(newest, after):
                return web.json_response(asdict(newest))
            remaining = deadline - time.monotonic()
            if remaining <= 0 or ctx.closing.is_set():
                return web.Response(status=204)
            await sub.take(min(remaining, WATCH_RECHECK_S))
    finally:
        ctx.hub.unsubscribe(sub)


# --- the dashboard ------------------------------------------------------------------------
def static_file(root: Path, rel: str) -> Path | None:
    """A file under `root` named by a URL path, or None: no `..`, no hidden files, no
    symlink out of the directory, no directories."""
    parts = rel.split("/")
    if not rel or any(not p or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        return None
    base = root.resolve()
    path = (base / rel).resolve()
    if base not in path.parents or not path.is_file():
        return None
    return path


async def index(request: web.Request) -> web.StreamResponse:
    return _file(request, "index.html")


async def static(request: web.Request) -> web.StreamResponse:
    return _file(request, request.match_info["path"])


def _file(request: web.Request, rel: str) -> web.StreamResponse:
    path = static_file(request.app[CTX].static, rel)
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
