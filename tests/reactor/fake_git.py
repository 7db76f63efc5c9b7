"""An in-memory git for the delivery's tests: commits with parents and files, a remote
branch, a working tree that may be dirty, and a switch for the remote being away."""

from __future__ import annotations

from dataclasses import dataclass, field

from sidecar.core.errors import GitError


@dataclass
class Commit:
    sha: str
    parent: str | None
    files: dict[str, str]
    subject: str


@dataclass
class FakeGit:
    commits: dict[str, Commit] = field(default_factory=dict)
    remote_branch: str | None = None  # the remote's branch head
    head_sha: str = ""
    tracking_sha: str | None = None
    applied_sha: str | None = None
    dirty_paths: list[str] = field(default_factory=list)
    reachable: bool = True
    repository: bool = True
    calls: list[str] = field(default_factory=list)

    def commit(self, sha: str, files: dict[str, str], subject: str = "", parent: str = "") -> str:
        """A commit on the remote branch (on top of it, or of `parent`: a rewrite)."""
        base = parent or self.remote_branch
        merged = dict(self.commits[base].files) if base else {}
        merged.update(files)
        self.commits[sha] = Commit(sha, base, merged, subject or f"commit {sha}")
        self.remote_branch = sha
        return sha

    def _remote(self, what: str) -> None:
        self.calls.append(what)
        if not self.reachable:
            raise GitError(f"git {what}: fatal: unable to access 'https://u:***@git.example/'")

    # --- GitPort ----------------------------------------------------------------------------
    def is_repository(self) -> bool:
        return self.repository

    def clone(self) -> str:
        self._remote("clone")
        assert self.remote_branch is not None
        self.repository = True
        self.head_sha = self.tracking_sha = self.applied_sha = self.remote_branch
        return self.head_sha

    def remote_head(self) -> str | None:
        self._remote("ls-remote")
        return self.remote_branch

    def fetch(self) -> str:
        self._remote("fetch")
        assert self.remote_branch is not None
        self.tracking_sha = self.remote_branch
        return self.remote_branch

    def head(self) -> str:
        return self.head_sha

    def tracking(self) -> str | None:
        return self.tracking_sha

    def applied(self) -> str | None:
        return self.applied_sha

    def mark_applied(self, commit: str) -> None:
        self.applied_sha = commit

    def dirty(self) -> list[str]:
        return list(self.dirty_paths)

    def _ancestors(self, sha: str) -> list[str]:
        out: list[str] = []
        current: str | None = sha
        while current:
            out.append(current)
            current = self.commits[current].parent
        return out

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return ancestor in self._ancestors(descendant)

    def count(self, exclude: str, include: str) -> int:
        excluded = set(self._ancestors(exclude))
        return sum(1 for c in self._ancestors(include) if c not in excluded)

    def changed_paths(self, old: str, new: str) -> list[str]:
        a, b = self.commits[old].files, self.commits[new].files
        return sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))

    def fast_forward(self, commit: str) -> None:
        if not self.is_ancestor(self.head_sha, commit):
            raise GitError("git merge --ff-only: fatal: Not possible to fast-forward")
        self.head_sha = commit

    def reset_to(self, commit: str) -> None:
        self.head_sha = commit

    def commit_subject(self, commit: str) -> str:
        return self.commits[commit].subject
