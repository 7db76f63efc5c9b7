"""The harness cleans up after itself: a test's project leaves no image behind."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from testkit.workspace import Workspace, project_images


def image_id(ref: str) -> str | None:
    proc = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_cleanup_removes_superseded_images(tmp_path: Path, docker_ready: None) -> None:
    ws = Workspace(tmp_path / "ws", f"sctcleanup{uuid.uuid4().hex[:6]}")
    ws.add_service("web")
    ws.write_compose()
    try:
        ws.compose("build", "web")
        first = image_id(f"{ws.name}-web")
        ws.write("web/www/index.html", "v2\n")
        ws.compose("build", "web")
        second = image_id(f"{ws.name}-web")
        assert first and second and first != second
        assert image_id(first) == first, "the superseded image is still there, untagged"
        assert {first, second} <= project_images(ws.name)
        ws.cleanup()
        assert image_id(first) is None, "the superseded (dangling) image is removed"
        assert image_id(second) is None
        assert project_images(ws.name) == set()
    finally:
        ws.cleanup()
