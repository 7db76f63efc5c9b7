"""A real git remote for the delivery tests and benchmarks: a bare repository on disk
(`file://`), the workspace as a clone of it, and a developer's clone that pushes. Plus the
webhooks a git host would send, signed with `core.hooks.sign`."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from sidecar.core.hooks import sign

ZERO = "0" * 40
_ENV = {
    "GIT_AUTHOR_NAME": "dev",
    "GIT_AUTHOR_EMAIL": "dev@example.invalid",
    "GIT_COMMITTER_NAME": "dev",
    "GIT_COMMITTER_EMAIL": "dev@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,  # the machine's own config does not matter
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


class Remote:
    """`bare` (the remote), and `dev`: a clone whose commits are pushed to it."""

    def __init__(self, base: Path, branch: str = "main") -> None:
        self.bare = base / "remote.git"
        self.dev = base / "dev"
        self.branch = branch
        self.url = self.bare.as_uri()

    def publish(self, workspace: Path) -> str:
        """Make `workspace` (a compose project on disk) the first commit of the remote and
        a clone of it, as a user who cloned the repository would have it."""
        git(self.bare.parent, "init", "-q", "--bare", "-b", self.branch, str(self.bare))
        git(workspace, "init", "-q", "-b", self.branch)
        git(workspace, "add", "-A")
        git(workspace, "commit", "-q", "-m", "first")
        git(workspace, "remote", "add", "origin", self.url)
        git(workspace, "push", "-q", "origin", self.branch)
        git(workspace, "branch", "-q", f"--set-upstream-to=origin/{self.branch}")
        git(self.bare.parent, "clone", "-q", "-b", self.branch, self.url, str(self.dev))
        return git(workspace, "rev-parse", "HEAD")

    def push(self, files: dict[str, str], message: str, branch: str = "") -> str:
        """Commit `files` (path -> content) in the developer's clone and push: the sha."""
        branch = branch or self.branch
        if branch != self.branch:
            git(self.dev, "checkout", "-q", "-B", branch)
        for rel, text in files.items():
            path = self.dev / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "-m", message)
        git(self.dev, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        sha = git(self.dev, "rev-parse", "HEAD")
        if branch != self.branch:
            git(self.dev, "checkout", "-q", self.branch)
        return sha

    def head(self) -> str:
        return git(self.bare, "rev-parse", f"refs/heads/{self.branch}")


def push_hook(
    provider: str,
    remote: Remote,
    after: str,
    secret: str,
    ref: str = "",
    delivery: str = "",
    before: str = ZERO,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a push webhook as `provider` sends it."""
    ref = ref or f"refs/heads/{remote.branch}"
    delivery = delivery or str(uuid.uuid4())
    payload: dict[str, Any]
    if provider == "gitlab":
        payload = {
            "object_kind": "push",
            "event_name": "push",
            "ref": ref,
            "before": before,
            "after": after,
            "checkout_sha": after,
            "project": {
                "path_with_namespace": "dev/remote",
                "git_http_url": remote.url,
                "git_ssh_url": remote.url,
                "web_url": remote.url,
            },
        }
        headers = {"X-Gitlab-Event": "Push Hook", "Idempotency-Key": delivery}
    else:
        payload = {
            "ref": ref,
            "before": before,
            "after": after,
            "forced": False,
            "deleted": False,
            "repository": {"full_name": "dev/remote", "clone_url": remote.url},
            "head_commit": {"id": after},
        }
        if provider == "github":
            headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery}
        else:
            headers = {"X-Gitea-Event": "push", "X-Gitea-Delivery": delivery}
    body = json.dumps(payload).encode()
    headers = {**headers, "Content-Type": "application/json", **sign(provider, body, secret)}
    return body, headers
