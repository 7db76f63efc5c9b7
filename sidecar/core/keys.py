"""Every Redis key the sidecar reads or writes, in one place. The README's key table mirrors it.

All keys live under `<prefix>:<project>:` so that several projects (and test runs) can
share one Redis without seeing each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str
    project: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.project}"

    @property
    def heartbeat(self) -> str:
        """STRING with a TTL: JSON {pid, host, started, version}; absent = daemon not alive."""
        return f"{self.base}:heartbeat"

    @property
    def sentinel(self) -> str:
        """STRING without TTL, set by the daemon: when it is missing, Redis lost the
        daemon's state (restart, flush) and everything is re-published."""
        return f"{self.base}:sentinel"

    @property
    def services(self) -> str:
        """SET of the service names of the project model, as last loaded."""
        return f"{self.base}:services"

    def service(self, name: str) -> str:
        """HASH of one service: context, dockerfile, image, last build (time, duration, result)."""
        return f"{self.base}:service:{name}"

    def hashes(self, name: str) -> str:
        """HASH path -> content digest of every file the service's last good build used."""
        return f"{self.base}:hashes:{name}"

    def synced(self, name: str) -> str:
        """HASH path -> digest of what develop.watch sync put into the service's containers on
        top of their image (`-`: deleted there); the record a new instance catches up from."""
        return f"{self.base}:synced:{name}"

    def sync_gens(self, name: str) -> str:
        """HASH: `gen` -> the record's generation; container id -> the generation that
        container was last brought to (behind: it gets the whole record)."""
        return f"{self.base}:syncgen:{name}"

    @property
    def events(self) -> str:
        """STREAM (capped) of what happened: build-started, build-succeeded, build-failed, ..."""
        return f"{self.base}:events"

    @property
    def project_info(self) -> str:
        """HASH: workspace, compose files, last model load (time, result, error)."""
        return f"{self.base}:project"

    def rotation(self, name: str) -> str:
        """LIST of the URLs of the service's healthy instances: the proxy rotation
        (`LRANGE` to read, `LMOVE key key LEFT RIGHT` to round-robin)."""
        return f"{self.base}:rotation:{name}"

    def instances(self, name: str) -> str:
        """HASH container id -> JSON {name, url, state, since} of the service's instances."""
        return f"{self.base}:instances:{name}"

    @property
    def commands(self) -> str:
        """STREAM of commands (`XADD ... action scale service web replicas 3`), read by the
        daemon through the consumer group `sidecar`."""
        return f"{self.base}:commands"

    def result(self, command_id: str) -> str:
        """STRING (TTL 1 day) JSON {id, ok, action, service, message, at}: a command's result."""
        return f"{self.base}:result:{command_id}"

    def desired(self, name: str) -> str:
        """STRING: replicas set by a scale/spawn/destroy command (overrides the compose file
        until the compose file's own count changes)."""
        return f"{self.base}:desired:{name}"

    def versions(self, name: str) -> str:
        """HASH version number -> JSON {service, version, image, at, reason}: the service's
        newest deployed versions (`core.versions.KEPT` of them)."""
        return f"{self.base}:versions:{name}"

    def version(self, name: str) -> str:
        """STRING: the service's newest version number (one more per deploy, never reset by
        the sidecar; the long-poll `GET /v1/watch` compares against it)."""
        return f"{self.base}:version:{name}"

    @property
    def paused(self) -> str:
        """SET of services whose file changes are ignored (`pause`); `*` means all."""
        return f"{self.base}:paused"

    @property
    def git(self) -> str:
        """HASH: the git delivery's state: remote (redacted), branch, commit (the workspace's
        HEAD), subject, updated_at, last_result (`updated`, `up-to-date`, `refused`,
        `failed`), last_error, last_checked_at."""
        return f"{self.base}:git"

    @property
    def drift(self) -> str:
        """HASH: the last drift check: service -> JSON {service, ref, running, remote,
        drifted, reason}, and `at` (unix time)."""
        return f"{self.base}:drift"

    def delivery(self, provider: str, delivery_id: str) -> str:
        """STRING with a TTL (hook_dedupe_s): a webhook delivery seen (`SET NX`); a
        redelivery of the same id finds it and does nothing."""
        return f"{self.base}:delivery:{provider}:{delivery_id}"

    @property
    def hub(self) -> str:
        """STREAM (capped), shared by every project under the prefix: verified pushes
        (provider, delivery, repositories, ref, before, after, forced), written by whichever
        sidecar received the webhook and read by each sidecar following git; one public
        endpoint serves them all."""
        return f"{self.prefix}:hub:pushes"

    @property
    def image_hub(self) -> str:
        """STREAM (capped), shared like `hub`: image pushes a registry announced (`ref`,
        `digest`, `event`, `source`), read by every sidecar, each redeploying its services
        that run that repository and tag."""
        return f"{self.prefix}:hub:images"

    def pattern(self) -> str:
        """Glob matching every key of this project (for cleanup and `SCAN`)."""
        return f"{self.base}:*"


@dataclass(frozen=True)
class TraefikKeys:
    """Traefik's Redis (KV) provider layout, under a configurable root key."""

    root: str
    project: str

    def name(self, service: str) -> str:
        """Router and service name: `<project>-<service>`."""
        return f"{self.project}-{service}"

    def router(self, service: str) -> str:
        return f"{self.root}/http/routers/{self.name(service)}"

    def router_middleware(self, service: str, index: int) -> str:
        """The router's `index`-th middleware: its value names a middleware."""
        return f"{self.router(service)}/middlewares/{index}"

    def middleware(self, service: str) -> str:
        """The service's own middleware, named like its router (`<project>-<service>`)."""
        return f"{self.root}/http/middlewares/{self.name(service)}"

    def retry_attempts(self, service: str) -> str:
        return f"{self.middleware(service)}/retry/attempts"

    def retry_initial_interval(self, service: str) -> str:
        return f"{self.middleware(service)}/retry/initialInterval"

    def servers_transport(self, service: str) -> str:
        """The service's servers transport (connection settings), named like its router."""
        return f"{self.root}/http/serversTransports/{self.name(service)}"

    def dial_timeout(self, service: str) -> str:
        return f"{self.servers_transport(service)}/forwardingTimeouts/dialTimeout"

    def lb_servers_transport(self, service: str) -> str:
        """The service's reference to its servers transport."""
        return f"{self.root}/http/services/{self.name(service)}/loadbalancer/serversTransport"

    def lb_servers(self, service: str) -> str:
        return f"{self.root}/http/services/{self.name(service)}/loadbalancer/servers"

    def server_url(self, service: str, index: int) -> str:
        return f"{self.lb_servers(service)}/{index}/url"
