"""The failover fixture: one served service `app`, 3 instances that name themselves in every
answer and shut down slowly, routed by the sidecar (x-sidecar) and by Traefik's Docker
provider (labels) at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testkit.workspace import IMAGE_LABEL, Workspace

SERVICE = "app"
HOST = "app.bench"
PORT = 8080
REPLICAS = 3
SIGTERM_GRACE = 3  # seconds the fixture takes to exit after SIGTERM (httpd is gone at once)

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


def x_sidecar(retry_attempts: int) -> dict[str, Any]:
    return {
        "port": PORT,
        "replicas": REPLICAS,
        "rule": f"Host(`{HOST}`)",
        "retry": {"attempts": retry_attempts},
    }


def make_workspace(
    root: Path, name: str, retry_attempts: int, serve_during_shutdown: bool = False
) -> Workspace:
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
    extra: dict[str, Any] = {
        "build": {"context": f"./{SERVICE}", "labels": {IMAGE_LABEL: name}},
        "labels": labels,
        "x-sidecar": x_sidecar(retry_attempts),
    }
    ws.add_service(SERVICE, publish=False, **extra)
    ws.write_compose()
    return ws


def set_retry(ws: Workspace, attempts: int) -> None:
    """Change only the retry setting in the compose file: the sidecar reloads the project and
    republishes the routing in place (no instance is replaced); the labels, so path (b), stay
    as they are."""
    ws.services[SERVICE]["x-sidecar"] = x_sidecar(attempts)
    ws.write_compose()
