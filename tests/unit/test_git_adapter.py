"""The git adapter (sidecar.adapters.git) against real repositories: a bare "remote" in
tmp_path, a seeding clone that pushes to it, and the sidecar's workspace."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.adapters.git import Credentials, Git, git_env, redact
from sidecar.core.errors import GitError


@pytest.fixture(scope="module", autouse=True)
def _isolated_git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The machine's git config, identity and proxies do not matter here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("GIT_CONFIG_GLOBAL", os.devnull)
        mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        for who in ("AUTHOR", "COMMITTER"):
            mp.setenv(f"GIT_{who}_NAME", "Seed")
            mp.setenv(f"GIT_{who}_EMAIL", "seed@example.invalid")
        for name in ("http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            mp.delenv(name, raising=False)
        yield


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=20
    )
    return done.stdout.strip()


class Remote:
    """A bare repository (`remote.git`) and a seeding clone (`seed`) that commits and pushes
    to it, under `root`; `first` is the commit both start with (a.txt, b.txt, c.txt)."""

    def __init__(self, root: Path, first: str) -> None:
        self.url = str(root / "remote.git")
        self.seed = root / "seed"
        self.first = first

    @classmethod
    def create(cls, root: Path) -> Remote:
        git(root, "init", "-q", "--template=", "--bare", "-b", "main", "remote.git")
        git(root, "init", "-q", "--template=", "-b", "main", "seed")
        git(root / "seed", "remote", "add", "origin", "../remote.git")  # copies stay apart
        remote = cls(root, "")
        remote.first = remote.commit(
            {"a.txt": "one\n", "b.txt": "bee\n", "c.txt": "sea\n"}, "first"
        )
        return remote

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        """Write (or, for None, delete) files, commit them all and push; the new sha."""
        for name, text in files.items():
            path = self.seed / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        git(self.seed, "add", "-A")
        git(self.seed, "commit", "-q", "-m", message)
        git(self.seed, "push", "-q", "origin", "HEAD:main")
        return git(self.seed, "rev-parse", "HEAD")

    def amend(self, files: dict[str, str], message: str = "rewritten") -> str:
        """Rewrite the last commit and force-push it; the new sha."""
        for name, text in files.items():
            (self.seed / name).write_text(text)
        git(self.seed, "add", "-A")
        git(self.seed, "commit", "-q", "--amend", "-m", message)
        git(self.seed, "push", "-q", "--force", "origin", "HEAD:main")
        return git(self.seed, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Remote:
    """Made once; each test gets a copy (a few git processes fewer per test)."""
    return Remote.create(tmp_path_factory.mktemp("template"))


@pytest.fixture
def remote(template: Remote, tmp_path: Path) -> Remote:
    for name in ("remote.git", "seed"):
        shutil.copytree(Path(template.seed).parent / name, tmp_path / name, symlinks=True)
    return Remote(tmp_path, template.first)


@pytest.fixture
def cloned(remote: Remote, tmp_path: Path) -> tuple[Remote, Git, str]:
    """The remote cloned into the workspace; (remote, git, the first sha)."""
    g = Git(tmp_path / "ws", remote.url, "main")
    assert g.clone() == remote.first
    return remote, g, remote.first


def test_clone_into_an_empty_directory(remote: Remote, tmp_path: Path) -> None:
    sha = remote.commit({"compose.yaml": "services: {}\n"})
    ws = tmp_path / "ws"
    ws.mkdir()
    g = Git(ws, remote.url, "main")
    assert not g.is_repository()
    assert g.clone() == sha
    assert g.is_repository()
    assert g.head() == sha
    assert g.tracking() == sha
    assert g.applied() == sha  # what local commits are counted against from now on
    assert (ws / "compose.yaml").read_text() == "services: {}\n"
    assert g.dirty() == []
    newer = remote.commit({"compose.yaml": "services: {a: {image: x}}\n"})
    assert g.fetch() == newer and g.applied() == sha, "a fetch does not move APPLIED"
    g.fast_forward(newer)
    g.mark_applied(newer)
    assert g.applied() == newer


def test_clone_into_a_missing_directory(remote: Remote, tmp_path: Path) -> None:
    sha = remote.first
    g = Git(tmp_path / "deep" / "ws", remote.url, "main")
    assert not g.is_repository()
    assert g.clone() == sha


def test_clone_refuses_a_non_empty_directory(remote: Remote, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "mine.txt").write_text("keep me")
    with pytest.raises(GitError, match="not an empty directory"):
        Git(ws, remote.url, "main").clone()
    assert os.listdir(ws) == ["mine.txt"]


def test_is_repository_only_at_the_top(cloned: tuple[Remote, Git, str]) -> None:
    _, g, _ = cloned
    sub = g.workspace / "sub"
    sub.mkdir()
    assert g.is_repository()
    assert not Git(sub, g.remote, "main").is_repository()


def test_a_directory_inside_another_repository_is_not_used(
    cloned: tuple[Remote, Git, str],
) -> None:
    _, g, _ = cloned
    sub = g.workspace / "sub"
    sub.mkdir()
    with pytest.raises(GitError, match="not a git repository"):
        Git(sub, g.remote, "main").head()


def test_remote_head(remote: Remote, tmp_path: Path) -> None:
    assert Git(tmp_path / "ws", remote.url, "main").remote_head() == remote.first
    assert Git(tmp_path / "ws", remote.url, "nope").remote_head() is None
    # ls-remote matches ref name tails: refs/heads/feature/main is not main
    git(remote.seed, "push", "-q", "origin", "HEAD:refs/heads/feature/main")
    newer = remote.commit({"x": "2"})
    assert Git(tmp_path / "ws", remote.url, "main").remote_head() == newer


def test_fetch_moves_tracking_not_the_tree(cloned: tuple[Remote, Git, str]) -> None:
    remote, g, first = cloned
    second = remote.commit({"a.txt": "two\n"})
    assert g.remote_head() == second
    assert g.fetch() == second
    assert g.tracking() == second
    assert g.head() == first
    assert (g.workspace / "a.txt").read_text() == "one\n"
    assert g.dirty() == []
    assert g.commit_subject(second) == "change"
    assert g.commit_subject(first) == "first"


def test_fast_forward_on_a_branch(cloned: tuple[Remote, Git, str]) -> None:
    remote, g, first = cloned
    second = remote.commit({"a.txt": "two\n", "new/d.txt": "dee\n", "c.txt": None})
    g.fetch()
    assert g.is_ancestor(first, second)
    assert g.count(first, second) == 1
    g.fast_forward(second)
    assert g.head() == second
    assert (g.workspace / "a.txt").read_text() == "two\n"
    assert (g.workspace / "new" / "d.txt").read_text() == "dee\n"
    assert not (g.workspace / "c.txt").exists()
    assert g.dirty() == []


def test_fast_forward_keeps_unrelated_local_changes(cloned: tuple[Remote, Git, str]) -> None:
    remote, g, _ = cloned
    second = remote.commit({"a.txt": "two\n"})
    g.fetch()
    (g.workspace / "b.txt").write_text("local\n")
    g.fast_forward(second)
    assert (g.workspace / "a.txt").read_text() == "two\n"
    assert g.dirty() == ["b.txt"]


def test_fast_forward_refuses_to_overwrite_a_local_change(
    cloned: tuple[Remote, Git, str],
) -> None:
    remote, g, first = cloned
    second = remote.commit({"a.txt": "two\n"})
    g.fetch()
    (g.workspace / "a.txt").write_text("local\n")
    with pytest.raises(GitError, match=r"git merge .*overwritten by merge: a\.txt$"):
        g.fast_forward(second)
    assert g.head() == first
    assert (g.workspace / "a.txt").read_text() == "local\n"


def test_fast_forward_on_a_detached_head(cloned: tuple[Remote, Git, str]) -> None:
    remote, g, first = cloned
    git(g.workspace, "checkout", "-q", "--detach")
    second = remote.commit({"a.txt": "two\n"})
    g.fetch()
    g.fast_forward(second)
    assert g.head() == second
    assert (g.workspace / "a.txt").read_text() == "two\n"
    # backwards is not a fast-forward
    with pytest.raises(GitError, match="not a fast-forward"):
        g.fast_forward(first)
    assert g.head() == second


def test_changed_paths(cloned: tuple[Remote, Git, str]) -> None:
    remote, g, first = cloned
    (remote.seed / "b.txt").rename(remote.seed / "renamed.txt")
    second = remote.commit({"a.txt": "two\n", "c.txt": None, "sub/new.txt": "new\n"})
    g.fetch()
    assert sorted(g.changed_paths(first, second)) == [
        "a.txt",
        "b.txt",
        "c.txt",
        "renamed.txt",
        "sub/new.txt",
    ]
    assert g.changed_paths(second, second) == []


def test_dirty(cloned: tuple[Remote, Git, str]) -> None:
    remote, g, _ = cloned
    ws = g.workspace
    remote.commit({".gitignore": "*.log\n"})
    g.fast_forward(g.fetch())
    assert g.dirty() == []
    (ws / "a.txt").write_text("modified\n")
    (ws / "b.txt").write_text("staged\n")
    git(ws, "add", "b.txt")
    (ws / "untracked file.txt").write_text("new\n")
    (ws / "debug.log").write_text("ignored\n")
    assert sorted(g.dirty()) == ["a.txt", "b.txt", "untracked file.txt"]
    git(ws, "reset", "-q", "--hard")
    git(ws, "mv", "c.txt", "moved.txt")  # a staged rename: both of its paths
    assert sorted(g.dirty()) == ["c.txt", "moved.txt", "untracked file.txt"]


def test_force_push_is_not_a_descendant(cloned: tuple[Remote, Git, str]) -> None:
    remote, g, first = cloned
    second = remote.commit({"a.txt": "two\n"})
    g.fast_forward(g.fetch())
    rewritten = remote.amend({"a.txt": "rewritten\n"})
    assert g.fetch() == rewritten
    assert g.is_ancestor(first, rewritten)
    assert not g.is_ancestor(second, rewritten)
    assert g.count(rewritten, second) == 1  # the local commit the rewrite dropped
    assert g.count(second, rewritten) == 1
    with pytest.raises(GitError, match="merge-base"):
        g.is_ancestor("0" * 40, rewritten)


def test_count_of_local_commits(cloned: tuple[Remote, Git, str]) -> None:
    _, g, first = cloned
    for n in range(3):
        (g.workspace / "local.txt").write_text(str(n))
        git(g.workspace, "add", "local.txt")
        git(g.workspace, "commit", "-q", "-m", f"local {n}")
    assert g.count(g.TRACKING, "HEAD") == 3
    assert g.count("HEAD", g.TRACKING) == 0
    assert g.count(first, first) == 0


def test_reset_to_follows_a_force_push(cloned: tuple[Remote, Git, str]) -> None:
    remote, g, _ = cloned
    remote.commit({"a.txt": "two\n"})
    g.fast_forward(g.fetch())
    rewritten = remote.amend({"a.txt": "rewritten\n"})
    g.fetch()
    g.reset_to(rewritten)
    assert g.head() == rewritten
    assert git(g.workspace, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert (g.workspace / "a.txt").read_text() == "rewritten\n"
    assert g.dirty() == []


def test_reset_to_refuses_to_lose_a_local_change(cloned: tuple[Remote, Git, str]) -> None:
    remote, g, _ = cloned
    second = remote.commit({"a.txt": "two\n"})
    g.fast_forward(g.fetch())
    rewritten = remote.amend({"a.txt": "rewritten\n"})
    g.fetch()
    (g.workspace / "a.txt").write_text("local edit\n")
    with pytest.raises(GitError, match=r"git reset .*--keep .*Entry 'a\.txt' not uptodate"):
        g.reset_to(rewritten)
    assert g.head() == second
    assert (g.workspace / "a.txt").read_text() == "local edit\n"


def test_a_missing_remote(tmp_path: Path) -> None:
    g = Git(tmp_path / "ws", str(tmp_path / "nope.git"), "main")
    with pytest.raises(GitError) as err:
        g.remote_head()
    assert "git ls-remote" in str(err.value)
    assert "does not appear to be a git repository" in str(err.value)
    with pytest.raises(GitError, match="git clone"):
        g.clone()


def test_a_missing_branch(remote: Remote, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="nope"):
        Git(tmp_path / "ws", remote.url, "nope").clone()
    g = Git(tmp_path / "ws", remote.url, "main")
    g.clone()
    with pytest.raises(GitError, match="couldn't find remote ref"):
        Git(g.workspace, remote.url, "nope").fetch()


def test_git_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GitError, match="git is not installed"):
        Git(tmp_path, "/nowhere.git", "main").remote_head()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the tree to another user")
def test_a_tree_owned_by_another_user(cloned: tuple[Remote, Git, str]) -> None:
    _, g, first = cloned
    for path in [g.workspace, *g.workspace.rglob("*")]:
        os.lchown(path, 4321, 4321)
    with pytest.raises(subprocess.CalledProcessError):
        git(g.workspace, "rev-parse", "HEAD")  # plain git calls it dubious ownership
    assert g.is_repository()
    assert g.head() == first


def test_credentials_never_in_messages(tmp_path: Path) -> None:
    g = Git(
        tmp_path / "ws",
        "http://user:hunter2@127.0.0.1:9/x.git",
        "main",
        Credentials("u", "tok-SECRET"),
        timeout_s=10,
    )
    assert "tok-SECRET" not in repr(g.credentials)
    assert "hunter2" not in repr(g)
    for call in (g.remote_head, g.clone):
        with pytest.raises(GitError) as err:
            call()
        text = str(err.value)
        assert "hunter2" not in text
        assert "tok-SECRET" not in text
        assert base64.b64encode(b"u:tok-SECRET").decode() not in text
        assert "user:***@127.0.0.1:9" in text


def cmdlines_with(needle: bytes) -> list[bytes]:
    """The command lines of running processes that contain `needle` ([] without /proc)."""
    found = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(cmdline)
    return found


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """A server on loopback that reads one request, looks for the token in the command
    lines of the processes running meanwhile, and closes. (url, requests, cmdline hits)"""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    requests: list[bytes] = []
    hits: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            requests.append(data)
            hits.extend(cmdlines_with(b"tok-SECRET"))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/x.git", requests, hits
    server.close()
    thread.join(timeout=5)


def test_credentials_go_as_a_header_not_in_argv(
    tmp_path: Path, http_server: tuple[str, list[bytes], list[bytes]]
) -> None:
    url, requests, hits = http_server
    g = Git(tmp_path / "ws", url, "main", Credentials("u", "tok-SECRET"), timeout_s=10)
    with pytest.raises(GitError) as err:
        g.remote_head()
    assert "tok-SECRET" not in str(err.value)
    header = b"Authorization: Basic " + base64.b64encode(b"u:tok-SECRET")
    assert len(requests) == 1
    assert header in requests[0]
    assert hits == []


def test_a_timeout(tmp_path: Path) -> None:
    # a server that accepts connections (the kernel's backlog) and never answers
    with socket.create_server(("127.0.0.1", 0)) as server:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/x.git"
        g = Git(tmp_path / "ws", url, "main", Credentials("u", "tok-SECRET"), timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(GitError, match=r"git ls-remote .* timed out after 0\.3s") as err:
            g.remote_head()
        assert time.monotonic() - started < 3
        assert "tok-SECRET" not in str(err.value)
        # the remote helper (git-remote-http, which holds the connection) went with git
        assert cmdlines_with(url.encode()) == []


def test_bad_names_are_refused(tmp_path: Path) -> None:
    for branch in ("", "-b", "a..b", "a b", "x:y", "x~1", "main.lock", "a/"):
        with pytest.raises(ValueError, match="branch"):
            Git(tmp_path, "/r.git", branch)
    with pytest.raises(ValueError, match="remote"):
        Git(tmp_path, "--upload-pack=touch /tmp/x", "main")
    assert Git(tmp_path, "/r.git", "feature/x-1").TRACKING == "refs/sidecar/remote/feature/x-1"
    g = Git(tmp_path, "/r.git", "main")
    with pytest.raises(GitError, match="not a revision"):
        g.reset_to("--hard")


@pytest.mark.parametrize(
    ("base", "credentials", "expected"),
    [
        (
            {"PATH": "/bin", "HOME": "/h", "GIT_DIR": "/elsewhere", "GIT_TRACE": "1"},
            None,
            {
                "PATH": "/bin",
                "HOME": "/h",
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "",
                "LC_ALL": "C",
            },
        ),
        (
            {
                "PATH": "/bin",
                "LANG": "de_DE.UTF-8",
                "GIT_CONFIG_COUNT": "3",
                "GIT_TERMINAL_PROMPT": "1",
                "https_proxy": "http://proxy:3128",
                "SSH_AUTH_SOCK": "/run/agent",
            },
            Credentials("u", "tok-SECRET"),
            {
                "PATH": "/bin",
                "https_proxy": "http://proxy:3128",
                "SSH_AUTH_SOCK": "/run/agent",
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "",
                "LC_ALL": "C",
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": "Authorization: Basic "
                + base64.b64encode(b"u:tok-SECRET").decode(),
            },
        ),
    ],
)
def test_git_env(
    base: dict[str, str], credentials: Credentials | None, expected: dict[str, str]
) -> None:
    assert git_env(base, credentials) == expected


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (
            "fatal: unable to access 'https://user:secret@host/x.git/': 403",
            (),
            "fatal: unable to access 'https://user:***@host/x.git/': 403",
        ),
        ("remote: invalid token tok-SECRET", ("tok-SECRET",), "remote: invalid token ***"),
        ("see https://TOKEN@host/x for more", (), "see https://***@host/x for more"),
        ("nothing to hide here", ("", "tok"), "nothing to hide here"),
        ("/local/path.git: not found", (), "/local/path.git: not found"),
    ],
)
def test_redact(text: str, secrets: tuple[str, ...], expected: str) -> None:
    assert redact(text, secrets) == expected
