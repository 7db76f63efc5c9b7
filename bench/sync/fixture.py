"""The sync benchmark's fixtures: the test kit's busybox httpd FROM scratch (`init: true`,
images labelled for clean-up), each tool given the same `develop.watch` rules.

- `sync_workspace`: `web` alone, published on a fixed 127.0.0.1 port, with a sync rule on
  www/ and a rebuild rule on its Dockerfile, in a git repository whose branch `other`
  changes or adds BRANCH_FILES files under www/ (the branch switch of the bulk phase);
- `served_workspace`: bench/zero_downtime's 2-replica fixture behind Traefik, its rule
  replaced by `sync+restart` on www/;
- `rebuild_workspace`: `web` alone on its network, published, one `rebuild` rule on its
  whole context."""

from __future__ import annotations

from pathlib import Path

from bench.common import Json
from bench.zero_downtime import record as zd
from testkit.wait import run
from testkit.workspace import IMAGE_LABEL, Workspace

SVC = "web"
INITIAL = "initial"
SYNC_RULES = [
    {"action": "sync", "path": f"./{SVC}/www", "target": "/www"},
    {"action": "rebuild", "path": f"./{SVC}/Dockerfile"},
]
RESTART_RULES = [{"action": "sync+restart", "path": f"./{SVC}/www", "target": "/www"}]
REBUILD_RULES = [{"action": "rebuild", "path": f"./{SVC}"}]
BRANCH = "other"
PAGES = 500  # files of www/pages/ on main, all changed on BRANCH
BRANCH_FILES = 3000  # files BRANCH changes (PAGES) or adds (the rest, in new directories)
PER_DIR = 100


def _published(root: Path, name: str, rules: list[Json]) -> Workspace:
    ws = Workspace(root, name)
    ws.add_service(
        SVC,
        content=INITIAL,
        build={"context": f"./{SVC}", "labels": {IMAGE_LABEL: name}},
        develop={"watch": rules},
    )
    ws.write_compose()
    return ws


def branch_files() -> list[tuple[str, str]]:
    """(path under www/, content) of every file that branch BRANCH changes or adds, sorted by
    path (git's order)."""
    pages = [f"pages/p{i:03d}.html" for i in range(PAGES)]
    new = [f"more/d{i // PER_DIR:02d}/f{i:04d}.html" for i in range(BRANCH_FILES - PAGES)]
    return sorted((p, f"{p}@{BRANCH}") for p in pages + new)


def _git(ws: Workspace, *args: str) -> None:
    proc = run(
        "git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args, cwd=ws.root
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr[-2000:]}")


def _write_all(www: Path, files: list[tuple[str, str]]) -> None:
    for rel, content in files:
        path = www / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")


def sync_workspace(root: Path, name: str) -> tuple[Workspace, list[tuple[str, str]]]:
    """The sync fixture, on branch main of its git repository (the repository's root is the
    project's; only web/Dockerfile and web/www are tracked): (the workspace, the files
    `git checkout other` will change or add)."""
    ws = _published(root, name, SYNC_RULES)
    www = ws.root / SVC / "www"
    _write_all(www, [(f"pages/p{i:03d}.html", f"pages/p{i:03d}.html@main") for i in range(PAGES)])
    _git(ws, "init", "-q", "-b", "main")
    _git(ws, "add", f"{SVC}/Dockerfile", f"{SVC}/www")
    _git(ws, "commit", "-q", "-m", "main")
    _git(ws, "checkout", "-q", "-b", BRANCH)
    files = branch_files()
    _write_all(www, files)
    _git(ws, "add", f"{SVC}/www")
    _git(ws, "commit", "-q", "-m", BRANCH)
    _git(ws, "checkout", "-q", "main")
    return ws, files


def served_workspace(root: Path, name: str, kind: str) -> Workspace:
    """bench/zero_downtime's fixture for `kind` (sidecar: x-sidecar with 2 replicas; compose
    watch: deploy.replicas 2 and Traefik labels) with the rule `sync+restart` on www/."""
    ws = zd.make_workspace(root, name, kind)
    ws.services[SVC]["develop"] = {"watch": RESTART_RULES}
    ws.write_compose()
    return ws


def rebuild_workspace(root: Path, name: str) -> Workspace:
    return _published(root, name, REBUILD_RULES)
