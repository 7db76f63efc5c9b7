"""The git CLI, for a workspace kept at the newest commit of a remote branch. The runtime
decides when to fetch and whether to move; this only runs git and reads its answers.

Why the CLI and not a library: it is what people debug with, it honours their ssh and
proxy setup, and every operation here is one short command. Each call is an argument list
(no shell) with a timeout, run in a session of its own so a timed-out fetch takes its
remote helper (git-remote-https, ssh) down with it. git never waits for a human: no
terminal prompt, no askpass, no controlling terminal (ssh cannot ask either), stdin closed.

The environment is a short allowlist of the daemon's (PATH, HOME, proxies, CA files, ssh
agent...): a stray GIT_DIR or GIT_INDEX_FILE would point git elsewhere, GIT_TRACE would
print the credentials. `-c safe.directory=<workspace>` lets the daemon work on a tree owned
by another user, and GIT_CEILING_DIRECTORIES stops git from falling back to a repository
above the workspace (a reset there would be somebody else's tree).

A token never travels in argv (readable by every user in /proc) nor in the URL (saved in
.git/config by clone): it goes as an `http.extraHeader` through GIT_CONFIG_* variables. Every
message and log line is redacted: passwords in URLs become `***`, and so does the token (or
the URL's password) anywhere git happens to print it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from loguru import logger

from sidecar.core.errors import GitError
from sidecar.core.types import BasicAuth
from sidecar.settings import redact_url

# what git may see of the daemon's environment; everything else (GIT_DIR, GIT_WORK_TREE,
# GIT_INDEX_FILE, GIT_TRACE*, GIT_CONFIG_COUNT...) is left out
_KEEP_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "XDG_CONFIG_HOME",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "SSH_AUTH_SOCK",
        "GIT_SSL_CAINFO",
        "GIT_SSL_CAPATH",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "http_proxy",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    }
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# what check-ref-format refuses, roughly: enough to keep a branch name from being an option
# or a revision expression
_BAD_BRANCH = re.compile(r"^-|^/|/$|\.\.|//|@\{|\.lock$|\.$|[\x00-\x20\x7f~^:?*\[\\]")
_STOP_WAIT = 2.0
_MESSAGE_MAX = 600


Credentials = BasicAuth  # the remote's user name and token (git_username, git_token)


def git_env(base: Mapping[str, str], credentials: Credentials | None) -> dict[str, str]:
    """The environment of every git call: the allowlisted part of `base`, no prompts, C
    locale (messages in English), and the credentials as an extra HTTP header."""
    env = {k: v for k, v in base.items() if k in _KEEP_ENV}
    # an empty GIT_ASKPASS also shadows core.askPass and SSH_ASKPASS; with prompts off git
    # then fails at once ("terminal prompts disabled") instead of asking
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="", LC_ALL="C")
    if credentials is not None:
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: {credentials.basic()}",
        )
    return env


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each secret replaced by `***` and URL passwords hidden (redact_url)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def _secrets(remote: str, credentials: Credentials | None) -> tuple[str, ...]:
    found: list[str] = []
    if credentials is not None:
        basic = credentials.basic()
        found += [credentials.secret, basic, basic.removeprefix("Basic ")]
    with contextlib.suppress(ValueError):
        url = urlsplit(remote)
        if url.password:
            found += [url.password, unquote(url.password)]
        elif url.username and url.scheme in ("http", "https"):
            found += [url.username, unquote(url.username)]  # https://TOKEN@host
    return tuple(found)


def _last_words(stderr: str, stdout: str) -> str:
    """git's reason, on one line: its last three `error:`/`fatal:` lines (with the indented
    file names that follow one ending in ':'), else its last line. The hints and "Aborting"
    after them say nothing more."""
    picked: list[str] = []
    last = ""
    for raw in (stderr or stdout).splitlines():
        line = raw.strip()
        if not line:
            continue
        if raw[:1].isspace() and picked and picked[-1].endswith((":", ",")):
            picked[-1] += f" {line},"  # `error: ... overwritten by merge:` then `\ta.txt`
        elif line.startswith(("fatal:", "error:")):
            picked.append(line)
        last = line
    picked = [p.removesuffix(",") for p in picked[-3:]] or [last or "no output"]
    text = "; ".join(picked)
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 3] + "..."


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the call's process group (git then removes its lock files), SIGKILL if it
    lingers; give up on the pipes if something that left the group still holds them."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.communicate(timeout=_STOP_WAIT)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


class _Result(NamedTuple):
    code: int
    out: str


class Git:
    """git on one workspace, following one branch of one remote."""

    TRACKING: str

    def __init__(
        self,
        workspace: Path,
        remote: str,
        branch: str,
        credentials: Credentials | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        if not branch or _BAD_BRANCH.search(branch):
            raise ValueError(f"not a usable branch name: {branch!r}")
        if not remote or remote.startswith("-"):
            raise ValueError(f"not a usable remote: {redact_url(remote)!r}")
        self.workspace = Path(workspace).absolute()
        self.remote = remote
        self.branch = branch
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.TRACKING = f"refs/sidecar/remote/{branch}"
        # the commit the sidecar last moved the workspace to (or found it at): what "local
        # commits" are counted against, also after a fetch of a refused rewrite
        self.APPLIED = f"refs/sidecar/applied/{branch}"
        self._secrets = _secrets(remote, credentials)

    def __repr__(self) -> str:
        return f"Git({self.workspace}, {redact_url(self.remote)}, {self.branch})"

    # --- questions -----------------------------------------------------------------------
    def is_repository(self) -> bool:
        """Whether the workspace is the top of a git working tree (not merely inside one)."""
        if not self.workspace.is_dir():
            return False
        res = self._run("rev-parse", "--show-toplevel", ok=(0, 128))
        return res.code == 0 and Path(res.out.strip()).resolve() == self.workspace.resolve()

    def remote_head(self) -> str | None:
        """The sha the remote's branch is at, None when the remote has no such branch."""
        ref = f"refs/heads/{self.branch}"
        res = self._run("ls-remote", "--", self.remote, ref, where=self._where())
        for line in res.out.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:  # ls-remote's patterns match ref name tails
                return sha
        return None

    def head(self) -> str:
        return self._run("rev-parse", "--verify", "HEAD").out.strip()

    def tracking(self) -> str | None:
        """The sha at TRACKING, None before the first fetch (or clone)."""
        return self._ref(self.TRACKING)

    def applied(self) -> str | None:
        """The sha at APPLIED, None before the sidecar first moved (or cloned) the tree."""
        return self._ref(self.APPLIED)

    def mark_applied(self, commit: str) -> None:
        self._run("update-ref", self.APPLIED, _rev(commit))

    def _ref(self, ref: str) -> str | None:
        res = self._run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", ok=(0, 1))
        return res.out.strip() if res.code == 0 else None

    def dirty(self) -> list[str]:
        """Paths with uncommitted changes: tracked modifications, staged changes (both sides
        of a staged rename), untracked files that are not ignored (a wholly untracked
        directory as `dir/`). [] when clean."""
        res = self._run(
            # no index refresh written behind the back of somebody's own git in the tree
            "--no-optional-locks",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=normal",
        )
        fields = res.out.split("\0")
        paths: list[str] = []
        i = 0
        while i < len(fields):
            entry = fields[i]
            i += 1
            if len(entry) < 4:
                continue
            status, path = entry[:2], entry[3:]
            paths.append(path)
            if "R" in status or "C" in status:  # the source path is the next field
                if "R" in status and i < len(fields) and fields[i]:
                    paths.append(fields[i])
                i += 1
        return paths

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        res = self._run("merge-base", "--is-ancestor", _rev(ancestor), _rev(descendant), ok=(0, 1))
        return res.code == 0

    def count(self, exclude: str, include: str) -> int:
        """How many commits `include` has that `exclude` has not."""
        res = self._run("rev-list", "--count", f"{_rev(exclude)}..{_rev(include)}")
        return int(res.out.strip())

    def changed_paths(self, old: str, new: str) -> list[str]:
        """Paths (relative to the workspace) that differ between two commits; a rename is
        listed as both its old and its new path."""
        res = self._run("diff", "--no-renames", "--name-only", "-z", _rev(old), _rev(new), "--")
        return [path for path in res.out.split("\0") if path]

    def commit_subject(self, commit: str) -> str:
        res = self._run("log", "-1", "--no-show-signature", "--format=%s", _rev(commit), "--")
        return res.out.rstrip("\n")

    # --- changes ---------------------------------------------------------------------------
    def clone(self) -> str:
        """Clone the branch into the workspace (missing or an empty directory); TRACKING is
        set to the cloned commit. The HEAD sha."""
        ws = self.workspace
        if ws.exists() and (not ws.is_dir() or any(ws.iterdir())):
            raise GitError(f"git clone: {ws} is not an empty directory")
        self._run("clone", "--branch", self.branch, "--", self.remote, str(ws), where=self._where())
        sha = self.head()
        self._run("update-ref", self.TRACKING, sha)
        self._run("update-ref", self.APPLIED, sha)
        return sha

    def fetch(self) -> str:
        """Fetch the branch into TRACKING (force: the remote may have been rewritten), the
        working tree untouched. The fetched sha."""
        refspec = f"+refs/heads/{self.branch}:{self.TRACKING}"
        self._run("fetch", "--no-tags", "--", self.remote, refspec)
        sha = self.tracking()
        if sha is None:
            raise GitError(f"git fetch: {self.TRACKING} is missing after the fetch")
        return sha

    def fast_forward(self, commit: str) -> None:
        """Move the workspace forward to `commit`: the branch by `merge --ff-only`, or a
        detached HEAD by checkout when HEAD is an ancestor of `commit`. Local changes are kept;
        git refuses when they would be overwritten."""
        rev = _rev(commit)
        if self._run("symbolic-ref", "-q", "HEAD", ok=(0, 1)).code == 0:
            self._run("merge", "-q", "--ff-only", "--no-autostash", rev)
            return
        if not self.is_ancestor("HEAD", rev):
            raise GitError(
                f"git checkout --detach {rev}: not a fast-forward from the detached HEAD"
                f" {self.head()}"
            )
        self._run("checkout", "-q", "--detach", rev)

    def reset_to(self, commit: str) -> None:
        """Follow a force-push: `reset --keep`, which refuses (GitError) rather than lose a
        local change to a file that differs between HEAD and `commit`."""
        self._run("reset", "-q", "--keep", _rev(commit))

    # --- running git -----------------------------------------------------------------------
    def _where(self) -> Path:
        """Where to run commands that need no repository: the workspace when it exists (its
        config applies), else a directory that holds none."""
        return self.workspace if self.workspace.is_dir() else Path("/")

    def _run(self, *args: str, ok: tuple[int, ...] = (0,), where: Path | None = None) -> _Result:
        cwd = where or self.workspace
        real = self.workspace.resolve()
        shown = redact(" ".join(["git", *args]), self._secrets)
        if not cwd.is_dir():
            raise GitError(f"{shown}: {cwd} is not a directory")
        env = git_env(os.environ, self.credentials)
        env["GIT_CEILING_DIRECTORIES"] = str(real.parent)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                ["git", "-c", f"safe.directory={real}", *args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="surrogateescape",  # paths that are not UTF-8 survive the round trip
                start_new_session=True,  # no controlling terminal; one group to stop
            )
        except FileNotFoundError:
            raise GitError(f"{shown}: git is not installed (not found on PATH)") from None
        except OSError as exc:
            raise GitError(f"{shown}: {redact(str(exc), self._secrets)}") from None
        try:
            out, err = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _stop(proc)
            logger.debug("{} timed out after {:g}s", shown, self.timeout_s)
            raise GitError(f"{shown} timed out after {self.timeout_s:g}s") from None
        took = (time.monotonic() - started) * 1000
        logger.debug("{} -> {} in {:.0f} ms", shown, proc.returncode, took)
        if proc.returncode not in ok:
            words = redact(_last_words(err, out), self._secrets)
            raise GitError(f"{shown} failed (exit {proc.returncode}): {_printable(words)}")
        return _Result(proc.returncode, out)


def _rev(commit: str) -> str:
    """A revision argument that git cannot take for an option."""
    if not commit or commit.startswith("-"):
        raise GitError(f"not a revision: {commit!r}")
    return commit


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
