"""The HTTP server inside the daemon (aiohttp): the API, the metrics, the dashboard.

`WebServer.run` is a supervised thread's body (`Supervisor.spawn("http", ...)`): it runs an
asyncio loop of its own, so nothing a client does reaches the reactor's thread. It talks to
Redis with its own asyncio client; the daemon's only parts it touches are the metrics
registry (thread-safe) and the current key names.

Bad input costs the daemon nothing: bodies are capped (`http_max_body`, 413), a request
that does not arrive in `http_read_timeout_s` is dropped (408, or the connection closed),
event streams are capped (`http_sse_max_clients`, 503) and end with their client (handlers
are cancelled on disconnect), every error is a JSON body, and no handler blocks the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.typedefs import Middleware
from loguru import logger

from sidecar.adapters.metrics import Metrics
from sidecar.adapters.web import handlers, hooks
from sidecar.adapters.web.handlers import CTX, BadRequest, Context, HookConfig, error
from sidecar.adapters.web.hub import EventHub
from sidecar.core.access import Listen, check_access
from sidecar.core.keys import Keys
from sidecar.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MESSAGES = {
    404: "not found",
    405: "method not allowed",
    408: "request timeout",
    413: "request body too large",
}


def make_app(ctx: Context, listen: Listen, token: str) -> web.Application:
    """The application: routes, the JSON error and the access middlewares."""
    app = web.Application(
        middlewares=[_errors, _access(listen, token)],
        client_max_size=max(ctx.max_body, ctx.hooks.max_body),
    )
    app[CTX] = ctx
    app.router.add_get("/v1/status", handlers.status)
    # no HEAD for what streams or waits: it would hold a slot and send nothing
    app.router.add_get("/v1/events", handlers.events, allow_head=False)
    app.router.add_post("/v1/commands", handlers.post_command)
    app.router.add_get("/v1/commands/{id}", handlers.get_command)
    app.router.add_get("/v1/watch", handlers.watch, allow_head=False)
    app.router.add_get("/v1/drift", handlers.drift, allow_head=False)
    app.router.add_post(f"/v1/hooks/{{provider:{hooks.PROVIDERS}}}", hooks.hook)
    app.router.add_post("/v1/hooks/registry", hooks.registry_hook)
    app.router.add_post("/v1/hooks/dockerhub/{token}", hooks.dockerhub_hook)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/", handlers.index)
    app.router.add_get("/static/{path:.+}", handlers.static)

    async def on_shutdown(_app: web.Application) -> None:
        ctx.closing.set()  # long-polls and streams answer now instead of at their timeout
        ctx.hub.wake_all()

    app.on_shutdown.append(on_shutdown)
    return app


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is a JSON body `{"error": ...}`; one bad request never ends the server."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return error(400, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = error(exc.status, _MESSAGES.get(exc.status) or exc.reason.lower())
        if "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logger.opt(exception=exc).error("http: {} {} failed", request.method, request.path)
        return error(500, "internal error")


def _access(listen: Listen, token: str) -> Middleware:
    """The middleware applying `core.access.check_access` before any handler runs."""

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        denied = check_access(
            request.method,
            request.path,
            loopback=listen.loopback,
            token=token,
            authorization=request.headers.get("Authorization"),
            host=request.headers.get("Host"),
        )
        if denied is None:
            return await handler(request)
        resp = error(denied.status, denied.error)
        if denied.status == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        return resp

    return access


class WebServer:
    """The server's thread: `run(stop)` serves until `stop` is set (or `interrupt`); it
    raises when it cannot serve (the address is taken, Redis refuses the client), and the
    supervisor restarts it with backoff."""

    def __init__(
        self, settings: Settings, listen: Listen, keys: Callable[[], Keys], metrics: Metrics
    ) -> None:
        self.settings = settings
        self.listen = listen
        self.keys = keys
        self.metrics = metrics
        self.static = STATIC
        self.bound: tuple[str, int] | None = None  # the address actually bound (port 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def run(self, stop: threading.Event) -> None:
        asyncio.run(self._serve(stop))

    def interrupt(self) -> None:
        """The supervisor's stop: wake the loop at once (it also polls the stop event)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(wake.set)

    def _client(self) -> aioredis.Redis:
        # the hub's XREAD blocks 5 s: the socket timeout must outlast it
        return aioredis.Redis.from_url(
            self.settings.redis_url.get_secret_value(),
            decode_responses=True,
            socket_timeout=10,
            socket_connect_timeout=2,
            health_check_interval=10,
        )

    async def _serve(self, stop: threading.Event) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        client = self._client()
        hub = EventHub(client, self.keys)
        ctx = Context(
            client,
            hub,
            self.keys,
            self.metrics,
            self.static,
            self.settings.http_sse_max_clients,
            self.settings.http_max_body,
            self.settings.http_command_wait_s,
            self.settings.http_read_timeout_s,
            HookConfig(
                secret=self.settings.hook_secret.get_secret_value(),
                remote=self.settings.git_remote.get_secret_value(),
                branch=self.settings.git_branch,
                max_body=self.settings.hook_max_body,
                dedupe_s=self.settings.hook_dedupe_s,
                registry_token=self.settings.registry_hook_token.get_secret_value(),
            ),
        )
        app = make_app(ctx, self.listen, self.settings.http_token.get_secret_value())
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,  # a client that hangs up ends its handler (and task)
            keepalive_timeout=self.settings.http_read_timeout_s,  # also: headers sent slowly
            shutdown_timeout=2.0,
        )
        await runner.setup()
        hub_task = asyncio.create_task(hub.run(), name="http-events")
        try:
            site = web.TCPSite(runner, self.listen.host, self.listen.port, reuse_address=True)
            await site.start()
            self.bound = _bound(runner)
            logger.info("http: listening on {}", _url(self.bound))
            while not stop.is_set() and not hub_task.done():
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
            if hub_task.done():
                hub_task.result()  # its error ends the thread: the supervisor restarts it
        finally:
            ctx.closing.set()
            hub_task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await hub_task
            await runner.cleanup()
            await client.aclose()
            self._loop = self._wake = None


def _bound(runner: web.AppRunner) -> tuple[str, int] | None:
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return str(addr[0]), int(addr[1])
    return None


def _url(bound: tuple[str, int] | None) -> str:
    if bound is None:
        return "?"
    host, port = bound
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
