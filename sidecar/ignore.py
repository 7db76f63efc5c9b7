"""Path filters: `.dockerignore` semantics (as Docker's patternmatcher) and the sidecar's own
gitignore-style ignore list. Pure: patterns in, booleans out; callers read the files."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pathspec

# Editor droppings, VCS metadata and dependency trees: never a reason to rebuild, and the
# big directories among them are not even watched (each watched directory costs an inotify watch).
DEFAULT_IGNORES: tuple[str, ...] = (
    ".git/",
    ".hg/",
    ".svn/",
    "node_modules/",
    "__pycache__/",
    ".venv/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".idea/",
    ".vscode/",
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "\\#*#",
    "4913",
    ".DS_Store",
    "*___jb_tmp___",
    "*___jb_old___",
)


def _star(pattern: str, i: int) -> tuple[str, int]:
    """Translate the `*` run at `i`; return the regex and the index of its last character."""
    if not pattern.startswith("**", i):
        return "[^/]*", i
    if pattern.startswith("**/", i):
        return "(?:.*/)?", i + 2  # `**/` matches zero or more whole directories
    return ".*", i + 1


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    j = pattern.find("]", i + 1)
    if j == -1:
        return re.escape("["), i
    body = pattern[i + 1 : j].replace("\\", "\\\\")
    if body[:1] == "!":
        body = "\\!" + body[1:]  # Go's filepath.Match negates with ^ only
    return f"[{body}]", j


def _translate(pattern: str) -> str:
    """Docker patternmatcher pattern -> anchored regex (`**` crosses directories, `*` does not)."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            piece, i = _star(pattern, i)
        elif c == "?":
            piece = "[^/]"
        elif c == "\\" and i + 1 < n:
            i += 1
            piece = re.escape(pattern[i])
        elif c == "[":
            piece, i = _char_class(pattern, i)
        else:
            piece = re.escape(c)
        out.append(piece)
        i += 1
    return "^" + "".join(out) + "$"


@dataclass(frozen=True)
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


@dataclass(frozen=True)
class DockerIgnore:
    """The rules of one `.dockerignore` (paths are relative to the build context, `/`-separated)."""

    patterns: tuple[_Pattern, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        patterns = []
        for raw in text.removeprefix("\ufeff").splitlines():
            if raw.startswith("#"):  # moby: a comment only when # is the very first character
                continue
            line = raw.strip()
            if not line:
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line.lstrip("/")
            if line == ".":
                continue
            patterns.append(_Pattern(line, exclusion, re.compile(_translate(line))))
        return cls(tuple(patterns))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def excludes(self, rel: str) -> bool:
        """True when Docker would leave `rel` out of the build context."""
        if not self.patterns:
            return False
        parents = _parents(rel)
        matched = False
        for pat in self.patterns:
            if pat.exclusion != matched:
                # an exclusion can only re-include, an inclusion only exclude
                continue
            hit = bool(pat.regex.match(rel)) or any(pat.regex.match(p) for p in parents)
            if hit:
                matched = not pat.exclusion
        return matched

    def excludes_dir_entirely(self, rel: str) -> bool:
        """True when nothing below directory `rel` can be in the context (safe to not watch it)."""
        return not self.has_exceptions and self.excludes(rel)


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class IgnoreList:
    """The sidecar's own ignore patterns, gitignore semantics, relative to the workspace root."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns)

    def __repr__(self) -> str:
        return f"IgnoreList({len(self.patterns)} patterns)"

    def ignores_file(self, rel: str) -> bool:
        return self._spec.match_file(rel)

    def ignores_dir(self, rel: str) -> bool:
        return self._spec.match_file(rel.rstrip("/") + "/")
