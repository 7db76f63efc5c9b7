"""Push webhooks from GitHub, Gitea/Forgejo and GitLab: `POST /v1/hooks/<provider>`.

A delivery is verified (`core.hooks.verify`: HMAC-SHA256 of the raw body or GitLab's
token, in constant time) before anything else is done with it; a bad or missing signature
is 401 with no detail and leaves no trace but a counter. A verified push is deduplicated
by its delivery id (`SET NX` with a TTL) and written to the hub stream, which every
sidecar on this Redis that follows git reads (this one included): one public endpoint
serves them all. The answer is 202 within milliseconds; the fetch and the build happen on
the daemon's `git` thread afterwards.

What is merely ignored (a ping, another event, a tag, a deleted branch, a repeated
delivery) is answered with a 2xx: hosts disable hooks that keep failing (GitLab does)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from loguru import logger
from redis.exceptions import RedisError

from sidecar.adapters.metrics import Update
from sidecar.adapters.web.handlers import CTX, Context, error, read_body
from sidecar.core.hooks import (
    HookError,
    Ignored,
    Ping,
    Push,
    delivery_id,
    matches,
    parse,
    push_fields,
    verify,
)

PROVIDERS = "github|gitea|gitlab"


def _count(ctx: Context, provider: str, result: str) -> None:
    ctx.metrics.apply(Update("hooks", (provider, result)))


def _answer(ctx: Context, provider: str, result: str, status: int, **extra: Any) -> web.Response:
    _count(ctx, provider, result)
    return web.json_response({"result": result, **extra}, status=status)


async def _delivery(request: web.Request, ctx: Context, provider: str) -> Push | web.Response:
    """The verified, parsed delivery, or the answer that ends the request."""
    body = await read_body(request, ctx, ctx.hooks.max_body)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if not verify(provider, headers, body, ctx.hooks.secret):
        _count(ctx, provider, "unauthorized")
        return error(401, "unauthorized")
    try:
        delivery = parse(provider, headers, body)
    except HookError as exc:
        _count(ctx, provider, "invalid")
        return error(400, str(exc))
    if isinstance(delivery, Ping):
        return _answer(ctx, provider, "pong", 200)
    if isinstance(delivery, Ignored):
        return _answer(ctx, provider, "ignored", 202, reason=delivery.reason)
    return delivery


async def hook(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    cfg = ctx.hooks
    provider = request.match_info["provider"]
    if not cfg.secret:
        return error(403, "no hook_secret configured")
    delivery = await _delivery(request, ctx, provider)
    if isinstance(delivery, web.Response):
        return delivery
    headers = {k.lower(): v for k, v in request.headers.items()}
    keys = ctx.current_keys()
    did = delivery_id(provider, headers)
    try:
        if did and not await ctx.redis.set(
            keys.delivery(provider, did), "1", nx=True, ex=cfg.dedupe_s
        ):
            return _answer(ctx, provider, "duplicate", 202, delivery=did)
        entry: Any = push_fields(delivery)
        await ctx.redis.xadd(keys.hub, entry, maxlen=cfg.hub_maxlen, approximate=True)
    except RedisError as exc:
        # not an ignorable answer: the host retries (or the next poll finds the commit)
        logger.warning("http: a {} push could not be queued: {}", provider, exc)
        return error(503, "redis unavailable", detail=type(exc).__name__)
    reason = matches(delivery, cfg.remote, cfg.branch) if cfg.remote else "no git_remote here"
    logger.info(
        "http: {} push {} of {} to {}: {}",
        provider,
        did or "(no delivery id)",
        delivery.ref,
        delivery.after[:12],
        "queued" if reason is None else f"ignored here ({reason}), on the hub for others",
    )
    if reason is None:
        return _answer(ctx, provider, "queued", 202, commit=delivery.after, delivery=did)
    # ignored here, but on the hub: another sidecar may follow that repository or branch
    return _answer(ctx, provider, "ignored", 202, reason=reason, delivery=did, published=True)
