"""Settings: environment (`SIDECAR_*`), then CLI flags (which win). Each field says why its
default is what it is; the README's configuration table is generated from these fields."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sidecar.core.access import Listen, parse_listen
from sidecar.core.ignore import DEFAULT_IGNORES

ListOfStr = Annotated[list[str], NoDecode]


def group(name: str) -> dict[str, Any]:
    return {"group": name}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIDECAR_", extra="ignore")

    # --- project -------------------------------------------------------------------------
    workspace: Path = Field(
        default_factory=Path.cwd,
        description="Directory holding the compose project; everything below it is watched.",
        json_schema_extra=group("project"),
    )
    compose_files: ListOfStr = Field(
        default_factory=list,
        description="Compose files (comma-separated), relative to the workspace. Empty: "
        "Compose's own default lookup (compose.yaml, docker-compose.yml, ...).",
        json_schema_extra=group("project"),
    )
    project_name: str | None = Field(
        default=None,
        description="Compose project name. Empty: Compose's default (the directory name).",
        json_schema_extra=group("project"),
    )
    exclude: ListOfStr = Field(
        default_factory=list,
        description="Services (comma-separated) the sidecar never builds, scales, restarts or "
        "stops: itself, Redis and the proxy when they run in the same compose project.",
        json_schema_extra=group("project"),
    )
    profiles: ListOfStr = Field(
        default_factory=list,
        description="Compose profiles to enable (comma-separated), as `--profile`.",
        json_schema_extra=group("project"),
    )

    # --- redis ---------------------------------------------------------------------------
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis URL (redis:// or rediss://, user and password allowed; never logged).",
        json_schema_extra=group("redis"),
    )
    key_prefix: str = Field(
        default="sidecar",
        description="First part of every Redis key; keys are `<prefix>:<project>:...`.",
        json_schema_extra=group("redis"),
    )
    events_maxlen: int = Field(
        default=1000,
        ge=10,
        description="Approximate cap of the events stream (XADD MAXLEN ~): history enough to "
        "debug a session without growing Redis forever.",
        json_schema_extra=group("redis"),
    )

    # --- watching ------------------------------------------------------------------------
    debounce_ms: int = Field(
        default=30,
        ge=0,
        description="Quiet window: a batch is released after this long without a new event. "
        "An editor's save (write, or temp file + rename) arrives as 1-5 events within a few "
        "ms, and tools that write many files write them back to back; 30 ms covers that "
        "several times over and keeps the wait a small part of edit-to-live (compose watch "
        "waits 500 ms). A git operation is covered by the index.lock hold, not by this.",
        json_schema_extra=group("watch"),
    )
    debounce_max_ms: int = Field(
        default=2000,
        ge=0,
        description="Maximum wait from the first event of a batch, so a process that never "
        "stops writing cannot postpone builds forever (Tilt caps at 10 s; 2 s keeps the "
        "loop live during long bursts).",
        json_schema_extra=group("watch"),
    )
    ignore: ListOfStr = Field(
        default_factory=list,
        description="Extra gitignore-style patterns (comma-separated), relative to the "
        "workspace, added to the built-in list (.git/, node_modules/, editor swap files...). "
        "Ignored directories are not watched at all.",
        json_schema_extra=group("watch"),
    )

    # --- builds --------------------------------------------------------------------------
    build_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Builds of different services that may run at once. 2 suits a laptop; "
        "builds are mostly I/O and the daemon's own work.",
        json_schema_extra=group("build"),
    )
    repair_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Converges (replacing a crashed instance, re-admitting, scaling) that may "
        "run at once, in a lane of their own: repairs never wait behind slow builds. 2 lets "
        "two services heal at once; a converge is mostly waiting on a health probe.",
        json_schema_extra=group("build"),
    )
    neighbour_flush: bool = Field(
        default=True,
        description="After compose recreated a plain service's container, forget the host's "
        "neighbour (ARP) entries of its addresses (`ip neigh flush to ADDR`): a request that "
        "came during the recreate left them INCOMPLETE, and clients then wait for the kernel's "
        "1 s ARP retry (measured: edit-to-live 1.6-2.2 s -> 0.7-1.1 s). Effective only for the "
        "sidecar run as root on the host; elsewhere it does nothing.",
        json_schema_extra=group("build"),
    )
    sync_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="develop.watch syncs (with their restarts and execs) of different services "
        "that may run at once, in a lane of their own so a sync never waits behind a build. "
        "Within one sync every container of the service is copied to in parallel.",
        json_schema_extra=group("build"),
    )
    build_timeout_s: float = Field(
        default=900.0,
        gt=0,
        description="A build running longer than this is cancelled and recorded as failed.",
        json_schema_extra=group("build"),
    )

    # --- daemon --------------------------------------------------------------------------
    drop_root: bool = Field(
        default=False,
        description="Started as root, switch at once to the workspace owner's uid (or the "
        "image's uid 10001 when root owns a world-readable workspace) with the Docker "
        "socket's group. The image sets it, so `docker run` needs no `--user`/`--group-add`.",
        json_schema_extra=group("daemon"),
    )
    heartbeat_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="How often the heartbeat key is refreshed.",
        json_schema_extra=group("daemon"),
    )
    heartbeat_ttl_s: float = Field(
        default=10.0,
        gt=0,
        description="Heartbeat key TTL: `sidecar check` fails once it expired (a few missed "
        "beats, so one slow Redis round trip does not flap a HEALTHCHECK).",
        json_schema_extra=group("daemon"),
    )
    stop_grace_s: float = Field(
        default=5.0,
        gt=0,
        description="On SIGTERM, how long in-flight builds may finish before they are cancelled.",
        json_schema_extra=group("daemon"),
    )

    # --- serving -------------------------------------------------------------------------
    url_mode: Literal["network", "host"] = Field(
        default="network",
        description="How the proxy reaches instances: `network` = the container's address on "
        "the project network (Traefik in the project, or on the Docker host); `host` = the "
        "instance's published host port on 127.0.0.1.",
        json_schema_extra=group("serving"),
    )
    network: str | None = Field(
        default=None,
        description="Network whose address goes into the rotation (url_mode network). "
        "Empty: `<project>_default`.",
        json_schema_extra=group("serving"),
    )
    traefik_root: str = Field(
        default="traefik",
        description="Root key of Traefik's Redis provider (`--providers.redis.rootKey`).",
        json_schema_extra=group("serving"),
    )

    # --- commands --------------------------------------------------------------------------
    max_replicas: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Global cap on any service's replicas set by a command (a service's own "
        "x-sidecar max_replicas may be lower). Commands come from anyone who can write to "
        "Redis: this bounds what they can make the Docker host run.",
        json_schema_extra=group("commands"),
    )
    result_ttl_s: int = Field(
        default=86400,
        ge=60,
        description="How long a command's result key is kept (and a repeated delivery of the "
        "same command id is recognised).",
        json_schema_extra=group("commands"),
    )

    # --- http ----------------------------------------------------------------------------
    http_listen: str = Field(
        default="127.0.0.1:8765",
        description="Address of the HTTP API, metrics and dashboard (`host:port`, `[v6]:port`, "
        "`:port` for every interface); empty: no HTTP server. Loopback by default: on "
        "another address every request but the dashboard's page needs http_token. 8765 is "
        "clear of the ports dev stacks usually take (3000, 5000, 8000, 8080; 8088 is the "
        "reference stack's Traefik dashboard).",
        json_schema_extra=group("http"),
    )
    http_token: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token (`Authorization: Bearer <token>`) for state-changing requests "
        "(always) and for every API request off loopback; compared in constant time, never "
        "logged or shown in status. Empty: POST endpoints answer 403.",
        json_schema_extra=group("http"),
    )
    http_max_body: int = Field(
        default=65536,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body accepted, in bytes (413 above). A command is at most "
        "8 fields of 256 bytes (about 2 KB of JSON); 64 KiB leaves room for the webhook "
        "payloads to come and makes a flood of big bodies cheap to refuse.",
        json_schema_extra=group("http"),
    )
    http_sse_max_clients: int = Field(
        default=32,
        ge=1,
        le=10000,
        description="Event streams (`GET /v1/events`) open at once; one more gets 503. Each "
        "costs a task and a bounded queue (no Redis connection: one reader serves all); 32 "
        "is many dashboards and `curl`s, and bounds what a client loop can take.",
        json_schema_extra=group("http"),
    )
    http_command_wait_s: float = Field(
        default=20.0,
        ge=0,
        le=300,
        description="How long `POST /v1/commands` waits for the command's result before "
        "answering 202 with its id (`GET /v1/commands/<id>` reads it later). A scale or a "
        "small build is done in 1-5 s here; 20 s stays under the 30 s that HTTP clients and "
        "proxies commonly allow.",
        json_schema_extra=group("http"),
    )
    http_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A connection that has not sent a whole request (headers, or a body) "
        "within this many seconds is closed (slow or stalled clients hold no connection for "
        "long); also how long an idle keep-alive connection stays open. Local clients send "
        "a request in milliseconds.",
        json_schema_extra=group("http"),
    )

    # --- git -----------------------------------------------------------------------------
    git_remote: SecretStr = Field(
        default=SecretStr(""),
        description="The repository the workspace follows (an https, ssh or file URL, or a "
        "path); empty: no delivery from git. Credentials in the URL are allowed and shown "
        "redacted everywhere; git_token is the better place for them.",
        json_schema_extra=group("git"),
    )
    git_branch: str = Field(
        default="main",
        description="The branch whose newest commit the workspace is kept at.",
        json_schema_extra=group("git"),
    )
    git_updates: Literal["webhook", "poll", "both"] = Field(
        default="both",
        description="How new commits arrive: push webhooks (`POST /v1/hooks/<host>`, through "
        "the Redis hub), polling (`git ls-remote` every git_poll_s), or both (a lost or "
        "undeliverable webhook is picked up by the next poll).",
        json_schema_extra=group("git"),
    )
    git_poll_s: float = Field(
        default=60.0,
        ge=1,
        le=86400,
        description="Seconds between two `git ls-remote` of the branch. One ls-remote is one "
        "small request (no objects move unless the branch moved): a minute keeps a deployment "
        "without webhooks a minute behind at most, at 1,440 requests a day (doco-cd polls "
        "every 180 s). Doubled after each failure, up to 10 minutes.",
        json_schema_extra=group("git"),
    )
    git_username: str = Field(
        default="",
        description="User name sent with git_token over https (`x-access-token` for GitHub "
        "app tokens, `oauth2` for GitLab).",
        json_schema_extra=group("git"),
    )
    git_token: SecretStr = Field(
        default=SecretStr(""),
        description="Password or access token for an https remote. Given to git through its "
        "environment (an `http.extraHeader`), never on a command line, in a URL, a log line "
        "or status.",
        json_schema_extra=group("git"),
    )
    git_allow_force: bool = Field(
        default=False,
        description="Follow a force-pushed branch (history rewritten: the workspace is reset "
        "to the new commit when it has no local changes). Off: such a push is refused and "
        "reported, and the running version keeps serving.",
        json_schema_extra=group("git"),
    )
    git_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Longest one git command (ls-remote, fetch, merge) may take before it is "
        "killed and reported as a failure.",
        json_schema_extra=group("git"),
    )
    hook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="The webhook secret of the repository host: the HMAC-SHA256 key of "
        "GitHub's `X-Hub-Signature-256` and Gitea/Forgejo's signature, or GitLab's "
        "`X-Gitlab-Token`. Empty: the hook endpoints answer 403. Never logged.",
        json_schema_extra=group("git"),
    )
    hook_max_body: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest webhook body accepted, in bytes (413 above). A push of 20 "
        "commits is 30-60 KB from GitHub; 1 MiB takes big pushes (GitHub caps at 25 MB "
        "but lists 20 commits at most).",
        json_schema_extra=group("git"),
    )
    hook_dedupe_s: int = Field(
        default=7 * 86400,
        ge=60,
        description="How long a webhook delivery id is remembered: a redelivery (the host's "
        "'Redeliver' button, a replay) within it is answered and does nothing. GitHub lets a "
        "delivery be redelivered for 3 days.",
        json_schema_extra=group("git"),
    )
    registry_hook_token: SecretStr = Field(
        default=SecretStr(""),
        description="Token of the registry webhooks: `Authorization: Bearer <token>` on "
        "`POST /v1/hooks/registry` (the distribution registry's notification endpoint sends "
        "it as a static header), and in the path of `POST /v1/hooks/dockerhub/<token>` "
        "(Docker Hub cannot send headers). Neither sender signs its requests. It can only "
        "make the sidecar pull images its services already run: keep it apart from "
        "http_token. Empty: both endpoints answer 403. Never logged.",
        json_schema_extra=group("registry"),
    )
    drift_interval_s: float = Field(
        default=0.0,
        ge=0,
        description="Every this many seconds the image-only services' running digests are "
        "compared with their registries' and the drifted ones pulled and rolled out (the "
        "`drift --apply` of a registry that sends no notifications). One manifest HEAD per "
        "service (Docker Hub counts no HEAD as a pull). 0: off; `sidecar drift` runs one "
        "on demand.",
        json_schema_extra=group("registry"),
    )
    registry_insecure: ListOfStr = Field(
        default_factory=list,
        description="Registries (`host:port`, or a CIDR) spoken to over plain http without "
        "TLS, as Docker's insecure-registries; loopback ones always are, as for Docker. "
        "Every other registry's certificate is verified.",
        json_schema_extra=group("registry"),
    )
    registry_auth_file: Path | None = Field(
        default=None,
        description="A Docker config file whose `auths` give registry credentials (default: "
        "$DOCKER_CONFIG/config.json, else ~/.docker/config.json). Never logged.",
        json_schema_extra=group("registry"),
    )
    images_kept: int = Field(
        default=3,
        ge=1,
        le=50,
        description="Images kept per built service for `rollback` (tagged "
        "`<image>:sidecar-v<version>`); older ones are untagged and removed.",
        json_schema_extra=group("git"),
    )

    # --- resilience ----------------------------------------------------------------------
    resync_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="Every this many seconds the served services are converged against what "
        "Docker reports (level-triggered repair of anything a missed event left wrong). A "
        "pass that finds everything as declared costs one container listing per service.",
        json_schema_extra=group("resilience"),
    )
    docker_retry_base_s: float = Field(
        default=0.5,
        gt=0,
        description="First wait before reconnecting to a Docker daemon that went away; "
        "doubles per attempt.",
        json_schema_extra=group("resilience"),
    )
    docker_retry_max_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait between reconnection attempts (a restarted daemon is "
        "picked up within this).",
        json_schema_extra=group("resilience"),
    )
    docker_call_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Tries of one Docker call (container listing, inspect, a compose command "
        "that failed before touching anything) whose error says the daemon was away; waits "
        "docker_retry_base_s, doubling. Other errors are permanent and surface at once.",
        json_schema_extra=group("resilience"),
    )
    redis_call_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        description="Tries of one Redis call on a connection error or timeout (0.1 s, then "
        "doubling, at most 1 s between); after that Redis counts as away and calls fail at "
        "once until the heartbeat's probe sees it back. Errors such as WRONGTYPE are never "
        "retried.",
        json_schema_extra=group("resilience"),
    )
    crash_backoff_base_s: float = Field(
        default=1.0,
        gt=0,
        description="A served instance that dies on its own is replaced at once the first "
        "time, then after this many seconds, doubling per death (capped below).",
        json_schema_extra=group("resilience"),
    )
    crash_backoff_max_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait before replacing a crashed instance.",
        json_schema_extra=group("resilience"),
    )
    crash_window_s: float = Field(
        default=120.0,
        gt=0,
        description="Deaths within this window count towards marking a service failed.",
        json_schema_extra=group("resilience"),
    )
    crash_max_failures: int = Field(
        default=5,
        ge=1,
        description="This many deaths within the window mark the service failed: no more "
        "replacements until a new build, rollout or command.",
        json_schema_extra=group("resilience"),
    )

    # --- logging -------------------------------------------------------------------------
    log_level: str = Field(
        default="INFO",
        description="DEBUG, INFO, WARNING or ERROR.",
        json_schema_extra=group("logging"),
    )
    log_json: bool = Field(
        default=False,
        description="One JSON object per log line (for log shippers) instead of text.",
        json_schema_extra=group("logging"),
    )

    @field_validator(
        "compose_files", "ignore", "profiles", "exclude", "registry_insecure", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("http_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)  # raises ValueError saying what is wrong
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @property
    def ignore_patterns(self) -> tuple[str, ...]:
        return DEFAULT_IGNORES + tuple(self.ignore)

    @property
    def listen(self) -> Listen | None:
        """Where the HTTP server listens; None when it is off."""
        return parse_listen(self.http_listen)

    def resolved_compose_files(self) -> list[str]:
        return [str((self.workspace / f).resolve()) for f in self.compose_files]


def redact_url(url: str) -> str:
    """`redis://user:secret@host` -> `redis://user:***@host` (for logs and status); a
    `?password=` query parameter is hidden too."""
    url = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}" if user else f"{scheme}://***@{host}"
