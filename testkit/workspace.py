"""Fixture compose projects on disk: busybox httpd images built FROM scratch (nothing is
pulled), a unique project name, and a clean-up that removes what the project made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from testkit.wait import free_port, run

BUSYBOX = Path(os.environ.get("SIDECAR_TEST_BUSYBOX", "/bin/busybox"))
# Every image a benchmark builds carries this label (compose `build.labels`), so the previous
# images that rebuilds leave dangling are found and removed too, and nothing else is touched.
IMAGE_LABEL = "compose-sidecar.bench"

DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
COPY www /www
CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
"""


class Workspace:
    """A compose project on disk, with a unique project name, that cleans up after itself."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.services: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, int] = {}
        root.mkdir(parents=True, exist_ok=True)

    def add_context(self, context: str, content: str = "v1") -> Path:
        ctx = self.root / context
        (ctx / "www").mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, ctx / "busybox")
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        (ctx / "www" / "index.html").write_text(content + "\n")
        return ctx

    def add_service(
        self,
        name: str,
        context: str | None = None,
        content: str = "v1",
        publish: bool = True,
        **extra: Any,
    ) -> int:
        context = context or name
        if not (self.root / context / "Dockerfile").exists():
            self.add_context(context, content)
        port = free_port()
        self.ports[name] = port
        self.services[name] = {
            "build": f"./{context}",
            "init": True,
            **({"ports": [f"127.0.0.1:{port}:8080"]} if publish else {}),
            **extra,
        }
        return port

    def write_compose(self) -> None:
        doc = {"name": self.name, "services": self.services}
        (self.root / "compose.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def remove_service(self, name: str) -> None:
        del self.services[name]
        self.write_compose()

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", "-p", self.name, "--project-directory", str(self.root), *args],
            capture_output=True,
            text=True,
            check=check,
            cwd=self.root,
        )

    def containers(self, service: str | None = None, all_: bool = False) -> list[str]:
        args = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.name}"]
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        if all_:
            args.append("-a")
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return out.split()

    def inspect(self, container: str) -> dict[str, Any]:
        """`docker inspect`, or {} when the container is gone (it may be, mid-rollout)."""
        proc = subprocess.run(
            ["docker", "inspect", container], capture_output=True, text=True, check=False
        )
        return dict(json.loads(proc.stdout)[0]) if proc.returncode == 0 else {}

    def cleanup(self) -> None:
        ids = self.containers(all_=True)
        if ids:
            subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True, check=False)
        label = f"label=com.docker.compose.project={self.name}"
        for kind, names in (("network", {f"{self.name}_default"}), ("volume", set())):
            out = subprocess.run(
                ["docker", kind, "ls", "-q", "--filter", label],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            for name in sorted(names | set(out.split())):
                subprocess.run(["docker", kind, "rm", name], capture_output=True, check=False)
        remove_images(self.name)


def project_images(project: str) -> set[str]:
    """Ids of every image built for a compose project: the tagged `<project>-<svc>` ones and
    the ones a rebuild superseded (dangling now; compose labels each image it builds with
    com.docker.compose.project). Images of other projects are never among them."""
    found: set[str] = set()
    selectors = (
        f"label=com.docker.compose.project={project}",
        f"label={IMAGE_LABEL}={project}",  # the benchmarks' own builds
        f"reference={project}-*",
    )
    for selector in selectors:
        out = run("docker", "images", "-aq", "--no-trunc", "--filter", selector).stdout
        found |= set(out.split())
    return found


def remove_images(project: str) -> int:
    """Remove every image built for `project` (tagged or left dangling by a rebuild)."""
    ids = project_images(project)
    if ids:
        run("docker", "rmi", "-f", *sorted(ids))
    return len(ids)
