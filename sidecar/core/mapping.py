"""Which services does a changed path affect? Pure: built from the project model and the
already-read ignore rules, answers questions about absolute paths without touching the disk."""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sidecar.core.ignore import DockerIgnore, IgnoreList
from sidecar.core.model import Project, ServiceSpec, WatchRule

# The rule index of a hit that is not a develop.watch rule: the build context or Dockerfile of
# a service (a rebuild).
CONTEXT = -1

# Files whose change means "re-read the project model" rather than "rebuild something".
_PROJECT_SUFFIXES = (".yml", ".yaml")
_PROJECT_NAMES = (".env", ".dockerignore")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _rel(path: str, root: str) -> str:
    return posixpath.relpath(path, root)


@dataclass(frozen=True)
class _Root:
    """One place a service is watched: a context or a develop.watch path."""

    service: str
    root: str
    context: str | None
    dockerignore: DockerIgnore
    # develop.watch `ignore`: .dockerignore syntax anchored at the rule's path, as compose does
    rule_ignore: DockerIgnore | None
    rule: int = CONTEXT  # the develop.watch rule's index
    # develop.watch `include`: when set, only paths it matches (anchored at the rule's path)
    rule_include: DockerIgnore | None = None


def _prefix(directory: str, root: str) -> str:
    """`directory` relative to `root`, as a prefix for file names ('' for the root itself)."""
    if directory == root:
        return ""
    return directory[len(root.rstrip("/")) + 1 :] + "/"


@dataclass(frozen=True)
class _FileCheck:
    """One root covering a directory, with what is left to check per file."""

    service: str
    rule_ignore: DockerIgnore | None
    rule_prefix: str
    dockerignore: DockerIgnore
    ctx_prefix: str | None  # None: the directory lies outside the build context
    rule: int = CONTEXT
    rule_include: DockerIgnore | None = None

    def includes(self, name: str) -> bool:
        rel = self.rule_prefix + name
        if self.rule_ignore is not None and self.rule_ignore.excludes(rel):
            return False
        if self.rule_include is not None and not self.rule_include.excludes(rel):
            return False
        if self.ctx_prefix is None:
            return True
        rel = self.ctx_prefix + name
        return rel == ".dockerignore" or not self.dockerignore.excludes_in_kept_dir(rel)


@dataclass(frozen=True)
class DirRules:
    """Classifies the files of one directory (see PathMapper.dir_rules)."""

    ignore_prefix: str | None  # None: the sidecar's ignore list does not apply
    ignores: IgnoreList
    checks: tuple[_FileCheck, ...]

    def services(self, name: str) -> set[str]:
        if not self.checks:
            return set()
        if self.ignore_prefix is not None and self.ignores.ignores_file_in_kept_dir(
            self.ignore_prefix + name
        ):
            return set()
        return {service for service, _ in self.hits(name)}

    def hits(self, name: str) -> set[tuple[str, int]]:
        """(service, rule index) of every root whose rules include the file `name`."""
        if not self.checks:
            return set()
        if self.ignore_prefix is not None and self.ignores.ignores_file_in_kept_dir(
            self.ignore_prefix + name
        ):
            return set()
        return {(c.service, c.rule) for c in self.checks if c.includes(name)}


class PathMapper:
    """Maps absolute paths to the services whose sources they are.

    A path affects a service when it lies under one of the service's watch roots and is
    neither excluded by the context's `.dockerignore` nor by the sidecar's ignore list.
    The Dockerfile always counts, even when it lies outside the context.
    """

    def __init__(
        self,
        project: Project,
        dockerignores: Mapping[str, DockerIgnore],
        ignores: IgnoreList,
        workspace: str,
    ) -> None:
        self.project = project
        self.ignores = ignores
        self.workspace = workspace.rstrip("/") or "/"
        self._roots: list[_Root] = []
        self._dockerfiles: dict[str, set[str]] = {}
        self._rules: dict[tuple[str, int], WatchRule] = {}
        for svc in project.services.values():
            if not (svc.built or svc.watch):
                continue
            rules = dockerignores.get(svc.name) or dockerignores.get(svc.context or "")
            self._add_service(svc, rules or DockerIgnore())
        self._project_files = {posixpath.normpath(f) for f in project.compose_files}

    def _add_service(self, svc: ServiceSpec, dockerignore: DockerIgnore) -> None:
        if svc.watch:
            for rule in svc.watch:
                self._rules[svc.name, rule.index] = rule
                rule_ignore = DockerIgnore.parse("\n".join(rule.ignore)) if rule.ignore else None
                include = DockerIgnore.parse("\n".join(rule.include)) if rule.include else None
                self._roots.append(
                    _Root(
                        svc.name,
                        rule.path,
                        svc.context,
                        dockerignore,
                        rule_ignore,
                        rule.index,
                        include,
                    )
                )
        elif svc.context:
            self._roots.append(_Root(svc.name, svc.context, svc.context, dockerignore, None))
        if svc.dockerfile:
            self._dockerfiles.setdefault(svc.dockerfile, set()).add(svc.name)

    @property
    def watch_roots(self) -> list[str]:
        """Directories to watch: the workspace plus any root that lies outside it."""
        roots = [self.workspace]
        extra = {r.root for r in self._roots} | {posixpath.dirname(f) for f in self._project_files}
        for root in sorted(extra):
            if not any(_under(root, r) for r in roots):
                roots.append(root)
        return roots

    def _ignore_base(self, path: str) -> str | None:
        """What the sidecar's ignore list is relative to: the workspace, or for a path outside
        it, the outermost watch root holding it."""
        if _under(path, self.workspace):
            return self.workspace
        holding = [r.root for r in self._roots if _under(path, r.root)]
        return min(holding, key=len) if holding else None

    def _ignored_by_sidecar(self, path: str) -> bool:
        base = self._ignore_base(path)
        if base is None or path == base:
            return False
        return self.ignores.ignores_file(_rel(path, base))

    def services_for(self, path: str) -> set[str]:
        """The services a change of `path` affects (empty: nothing to do)."""
        return {service for service, _ in self.hits_for(path)}

    def hits_for(self, path: str) -> set[tuple[str, int]]:
        """(service, rule index) of every rule a change of `path` matches; CONTEXT for a
        service's build context (no develop.watch) and its Dockerfile. Every matching rule
        applies, as in compose (handleWatchBatch runs all of them)."""
        path = posixpath.normpath(path)
        hit = {(s, CONTEXT) for s in self._dockerfiles.get(path, ())}
        hit |= {(r.service, r.rule) for r in self._roots if r.root == path}
        parent, name = posixpath.split(path)
        return hit | self.dir_rules(parent).hits(name)

    def rule(self, service: str, index: int) -> WatchRule | None:
        return self._rules.get((service, index))

    def container_path(self, service: str, index: int, path: str) -> str | None:
        """Where a sync rule puts `path` inside the container (None: not a sync rule)."""
        rule = self._rules.get((service, index))
        if rule is None or not rule.target:
            return None
        path = posixpath.normpath(path)
        target = "/" + rule.target.strip("/")  # relative targets start at / (as compose's tar)
        if path == rule.path:
            return target
        if path.startswith(rule.path.rstrip("/") + "/"):  # the usual case, without relpath
            return target.rstrip("/") + "/" + path[len(rule.path.rstrip("/")) + 1 :]
        return posixpath.normpath(posixpath.join(target, _rel(path, rule.path)))

    def in_context(self, service: str, path: str) -> bool:
        """The path is part of the service's build context (a build puts it in the image,
        as far as the sidecar can know: not excluded by the .dockerignore)."""
        svc = self.project.services.get(service)
        if svc is None or not svc.context or not _under(path, svc.context):
            return False
        rel = _rel(posixpath.normpath(path), svc.context)
        root = next((r for r in self._roots if r.service == service), None)
        ignore = root.dockerignore if root else DockerIgnore()
        return rel != "." and not ignore.excludes(rel)

    def dir_rules(self, directory: str) -> DirRules:
        """Everything about `directory` that its files share, worked out once (cached):
        which roots cover it, whether an ignore rule already excludes it as a whole."""
        return self._dir_rules(posixpath.normpath(directory))

    @functools.lru_cache(maxsize=8192)  # noqa: B019 - the mapper is immutable and short-lived
    def _dir_rules(self, directory: str) -> DirRules:
        base = self._ignore_base(directory + "/x")
        ign_prefix = None
        if base is not None:
            rel_dir = _rel(directory, base)
            if rel_dir != "." and self.ignores.ignores_dir(rel_dir):
                return DirRules(None, self.ignores, ())
            ign_prefix = "" if rel_dir == "." else rel_dir + "/"
        checks = []
        for r in self._roots:
            if not _under(directory + "/x", r.root):
                continue
            rule_prefix = _prefix(directory, r.root)
            if (
                r.rule_ignore is not None
                and rule_prefix
                and r.rule_ignore.excludes(rule_prefix.rstrip("/"))
            ):
                continue
            ctx_prefix = None
            if r.context and _under(directory + "/x", r.context):
                ctx_prefix = _prefix(directory, r.context)
                if ctx_prefix and r.dockerignore.excludes_dir_entirely(ctx_prefix.rstrip("/")):
                    continue
            checks.append(
                _FileCheck(
                    r.service,
                    r.rule_ignore,
                    rule_prefix,
                    r.dockerignore,
                    ctx_prefix,
                    r.rule,
                    r.rule_include,
                )
            )
        return DirRules(ign_prefix, self.ignores, tuple(checks))

    def map_paths(self, paths: Iterable[str]) -> dict[str, set[str]]:
        """service -> the given paths that affect it."""
        out: dict[str, set[str]] = {}
        for path in paths:
            for svc in self.services_for(path):
                out.setdefault(svc, set()).add(path)
        return out

    def map_hits(self, paths: Iterable[str]) -> dict[str, dict[int, set[str]]]:
        """service -> rule index -> the given paths that match that rule."""
        out: dict[str, dict[int, set[str]]] = {}
        for path in paths:
            for svc, rule in self.hits_for(path):
                out.setdefault(svc, {}).setdefault(rule, set()).add(path)
        return out

    def is_project_file(self, path: str) -> bool:
        """A change here may change the project model itself: reload it."""
        path = posixpath.normpath(path)
        if path in self._project_files:
            return True
        if self._ignored_by_sidecar(path):
            return False
        name = posixpath.basename(path)
        return name in _PROJECT_NAMES or (
            name.endswith(_PROJECT_SUFFIXES) and not self.services_for(path)
        )

    def prunes_dir(self, path: str) -> bool:
        """True when nothing below directory `path` can matter: don't watch or scan it."""
        path = posixpath.normpath(path)
        if self._ignored_dir_by_sidecar(path):
            return True
        if any(r.root == path for r in self._roots):
            return False  # a watch root itself is never pruned, whatever an outer context says
        covering = [r for r in self._roots if _under(path, r.root)]
        if not covering:
            return False
        return all(self._root_prunes(r, path) for r in covering) and not any(
            _under(df, path) for df in self._dockerfiles
        )

    def _ignored_dir_by_sidecar(self, path: str) -> bool:
        base = self._ignore_base(path)
        if base is None or path == base:
            return False
        return self.ignores.ignores_dir(_rel(path, base))

    @staticmethod
    def _root_prunes(root: _Root, path: str) -> bool:
        if root.rule_ignore is not None and root.rule_ignore.excludes_dir_entirely(
            _rel(path, root.root)
        ):
            return True
        if root.context and _under(path, root.context) and path != root.context:
            return root.dockerignore.excludes_dir_entirely(_rel(path, root.context))
        return False

    def dockerfiles_of(self, service: str) -> list[str]:
        return [df for df, svcs in self._dockerfiles.items() if service in svcs]

    def rel(self, path: str) -> str:
        """How a path is named in Redis: relative to the workspace (stable across mounts)."""
        if path.startswith(self.workspace + "/"):
            return path[len(self.workspace) + 1 :]
        return _rel(path, self.workspace) if _under(path, self.workspace) else path

    def abs(self, rel: str) -> str:
        return rel if rel.startswith("/") else posixpath.join(self.workspace, rel)

    def service_roots(self, service: str) -> list[str]:
        return [r.root for r in self._roots if r.service == service]

    def includes(self, service: str, path: str) -> bool:
        return service in self.services_for(path)
