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

import hmac
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
from sidecar.core.images import (
    ImageError,
    RegistryPush,
    parse_dockerhub,
    parse_registry_envelope,
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


# --- registries ------------------------------------------------------------------------
# Neither the distribution registry nor Docker Hub signs its notifications: the endpoints
# need registry_hook_token (a static `Authorization: Bearer` header the registry's endpoint
# config sends; in the path for Docker Hub, which cannot send headers), compared in
# constant time. A token that can only make the sidecar pull what it already runs.


def _token_ok(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


async def _publish_images(
    ctx: Context, source: str, pushes: list[RegistryPush]
) -> tuple[list[str], int]:
    """Deduplicate by event id and publish each push on the image hub: (the refs published,
    the duplicates)."""
    keys = ctx.current_keys()
    published, duplicates = [], 0
    for push in pushes:
        if push.event_id and not await ctx.redis.set(
            keys.delivery(source, push.event_id), "1", nx=True, ex=ctx.hooks.dedupe_s
        ):
            duplicates += 1
            continue
        entry: Any = {
            "ref": str(push.ref),
            "digest": push.digest,
            "event": push.event_id,
            "source": source,
        }
        await ctx.redis.xadd(keys.image_hub, entry, maxlen=ctx.hooks.hub_maxlen, approximate=True)
        published.append(str(push.ref))
    return published, duplicates


async def _registry_answer(
    request: web.Request, ctx: Context, source: str, token: str
) -> web.Response:
    cfg = ctx.hooks
    if not cfg.registry_token:
        return error(403, "no registry_hook_token configured")
    if not _token_ok(token, cfg.registry_token):
        _count(ctx, source, "unauthorized")
        return error(401, "unauthorized")
    body = await read_body(request, ctx, cfg.max_body)
    skipped: list[str] = []
    try:
        if source == "dockerhub":
            pushes = [parse_dockerhub(body)]
        else:
            pushes, skipped = parse_registry_envelope(body, cfg.registry_host)
    except ImageError as exc:
        _count(ctx, source, "invalid")
        return error(400, str(exc))
    if not pushes:
        return _answer(ctx, source, "ignored", 202, skipped=skipped[:20])
    try:
        published, duplicates = await _publish_images(ctx, source, pushes)
    except RedisError as exc:
        logger.warning("http: a {} notification could not be queued: {}", source, exc)
        return error(503, "redis unavailable", detail=type(exc).__name__)
    logger.info("http: {} pushed {} ({} repeated)", source, ", ".join(published) or "-", duplicates)
    result = "queued" if published else "duplicate"
    return _answer(ctx, source, result, 202, images=published, skipped=skipped[:20])


async def registry_hook(request: web.Request) -> web.Response:
    """`POST /v1/hooks/registry`: the CNCF distribution registry's notification envelope."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else ""
    return await _registry_answer(request, request.app[CTX], "registry", given)


async def dockerhub_hook(request: web.Request) -> web.Response:
    """`POST /v1/hooks/dockerhub/<token>`: Docker Hub's push payload."""
    return await _registry_answer(
        request, request.app[CTX], "dockerhub", request.match_info["token"]
    )
