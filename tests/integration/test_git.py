"""Delivery from git with real parts: a bare repository on disk as the remote, the workspace a
clone of it, the daemon with its HTTP server, real dockerd, Redis and Traefik. A developer's
clone pushes; the test sends the webhook the git host would send (signed with the secret)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.git import Remote, git, push_hook
from testkit.http_api import Api
from testkit.load import Load
from testkit.sidecar import Sidecar, converged, served
from testkit.traefik import Traefik
from testkit.wait import free_port, wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory

SECRET = "hook-secret-for-tests"
TOKEN = "api-token-for-tests"
FAST = {"max_replicas": 4}  # the default rollout: Traefik sees each step before the next


@pytest.fixture
def remote(workspace: Workspace, tmp_path: Path, redis_server: Any) -> Iterator[Remote]:
    yield Remote(tmp_path)
    # the hub is shared by every project under the prefix: this test's pushes go with it
    import redis

    redis.Redis.from_url(redis_server.url).delete("sidecar:hub:pushes")


def start(
    workspace: Workspace,
    sidecar: SidecarFactory,
    remote: Remote,
    **settings: str,
) -> tuple[Sidecar, Api, str, str]:
    """Two served services, `web` and `api`, from a clone of `remote`; the daemon follows
    it. (sidecar, api, web's Host header, the first commit)."""
    host = served(workspace, "web", replicas=2, **FAST)
    served(workspace, "api", replicas=1, **FAST)
    workspace.write_compose()
    first = remote.publish(workspace.root)
    port = free_port()
    sc = sidecar(
        http_listen=f"127.0.0.1:{port}",
        http_token=TOKEN,
        git_remote=remote.url,
        hook_secret=SECRET,
        **{"git_poll_s": "3600", **settings},
    )
    sc.start()
    api = Api(port, TOKEN)
    wait_for(lambda: converged(sc, "web", 2) and converged(sc, "api", 1), 60, "both serving")
    wait_for(api.up, 15, "the HTTP server")
    wait_for(lambda: git_state(sc).get("last_result") == "up-to-date", 30, "the first look")
    sc.settle()
    return sc, api, host, first


def git_state(sc: Sidecar) -> dict[str, str]:
    return {str(k): str(v) for k, v in sc.r.hgetall(f"sidecar:{sc.ws.name}:git").items()}


def hook(api: Api, provider: str, remote: Remote, after: str, **kw: Any) -> tuple[int, Any]:
    body, headers = push_hook(provider, remote, after, kw.pop("secret", SECRET), **kw)
    answer = api.post(f"/v1/hooks/{provider}", body, token=None, headers=headers)
    return answer.status, answer.json()


def builds(sc: Sidecar, service: str) -> int:
    return len(sc.events("build-started", service))


def page(workspace: Workspace, text: str) -> dict[str, str]:
    return {"web/www/index.html": text + "\n"}


def test_a_signed_push_rebuilds_only_what_it_changed_with_no_failed_request(
    workspace: Workspace, sidecar: SidecarFactory, remote: Remote, traefik: Traefik
) -> None:
    sc, api, host, first = start(workspace, sidecar, remote)
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "v0 through traefik")
    web_builds, api_builds = builds(sc, "web"), builds(sc, "api")
    version = int(sc.r.get(f"sidecar:{workspace.name}:version:web") or 0)
    with Load(traefik, host, rate=50) as load:
        sha = remote.push(page(workspace, "v2"), "new page")
        t0 = time.monotonic()
        status, answer = hook(api, "github", remote, sha)
        answered = time.monotonic() - t0
        assert (status, answer["result"], answer["commit"]) == (202, "queued", sha)
        assert answered < 1.0, answered
        # the long-poll answers with the new version and its commit
        got = api.get(f"/v1/watch?service=web&after={version}&timeout=60", timeout=70)
        assert got.status == 200, got.body
        assert got.json()["commit"] == sha
        wait_for(lambda: load.bodies(since=time.time() - 0.5) == {"v2"}, 30, "v2 served alone")
        time.sleep(1.0)
    assert load.failures() == [], f"{len(load.failures())} failed: {load.failures()[:5]}"
    assert builds(sc, "web") == web_builds + 1
    assert builds(sc, "api") == api_builds, "api did not change: not rebuilt"
    assert git(workspace.root, "rev-parse", "HEAD") == sha
    state = git_state(sc)
    assert state["commit"] == sha and state["subject"] == "new page"
    assert state["last_result"] == "updated" and first != sha


def test_forged_replayed_and_foreign_hooks_do_nothing_and_other_hosts_work(
    workspace: Workspace, sidecar: SidecarFactory, remote: Remote
) -> None:
    sc, api, _, first = start(workspace, sidecar, remote)
    web_builds = builds(sc, "web")
    sha = remote.push(page(workspace, "v2"), "v2")
    # a wrong signature: 401 without detail, nothing happens
    status, answer = hook(api, "github", remote, sha, secret="not-the-secret")
    assert (status, answer) == (401, {"error": "unauthorized"})
    # another branch, a tag: ignored with a 2xx (hosts disable hooks that fail)
    status, answer = hook(api, "github", remote, sha, ref="refs/heads/dev")
    assert status == 202 and answer["result"] == "ignored" and "dev" in answer["reason"]
    status, answer = hook(api, "github", remote, sha, ref="refs/tags/v2")
    assert status == 202 and answer["result"] == "ignored"
    time.sleep(2.0)
    assert git(workspace.root, "rev-parse", "HEAD") == first, "nothing moved the workspace"
    assert builds(sc, "web") == web_builds
    # the real delivery, then the same delivery replayed
    status, answer = hook(api, "gitea", remote, sha, delivery="delivery-1")
    assert (status, answer["result"]) == (202, "queued")
    wait_for(lambda: git_state(sc).get("commit") == sha, 30, "the workspace at the push")
    wait_for(lambda: builds(sc, "web") == web_builds + 1, 30, "one build")
    status, answer = hook(api, "gitea", remote, sha, delivery="delivery-1")
    assert (status, answer["result"]) == (202, "duplicate")
    # GitLab's format (and its token) delivers too
    sha3 = remote.push(page(workspace, "v3"), "v3")
    status, answer = hook(api, "gitlab", remote, sha3, before=sha)
    assert (status, answer["result"]) == (202, "queued")
    wait_for(lambda: git_state(sc).get("commit") == sha3, 30, "the workspace at v3")
    wait_for(lambda: builds(sc, "web") == web_builds + 2, 30, "the second build")
    time.sleep(1.0)
    assert builds(sc, "web") == web_builds + 2, "the replay built nothing"
    metrics = api.get("/metrics").body.decode()
    assert 'sidecar_webhooks_total{provider="github",result="unauthorized"} 1.0' in metrics
    assert 'sidecar_webhooks_total{provider="gitea",result="duplicate"} 1.0' in metrics


def test_a_dirty_workspace_is_refused_and_polling_needs_no_webhook(
    workspace: Workspace, sidecar: SidecarFactory, remote: Remote
) -> None:
    sc, _, _, first = start(workspace, sidecar, remote, git_updates="poll", git_poll_s="1")
    sha = remote.push({"api/www/index.html": "api v2\n"}, "api v2")
    wait_for(lambda: git_state(sc).get("commit") == sha, 30, "polling found the push")
    wait_for(lambda: _deployed_commit(sc, "api") == sha, 60, "api v2 deployed with its commit")
    # a local edit (not committed): the next push is refused, the edit is kept
    workspace.write("web/www/index.html", "my local edit\n")
    sha2 = remote.push({"api/www/index.html": "api v3\n"}, "api v3")
    wait_for(lambda: git_state(sc).get("last_result") == "refused", 30, "the update refused")
    state = git_state(sc)
    assert "uncommitted changes: web/www/index.html" in state["last_error"]
    assert state["refused"] == sha2 and state["commit"] == sha
    assert (workspace.root / "web/www/index.html").read_text() == "my local edit\n"
    assert git(workspace.root, "rev-parse", "HEAD") == sha
    refused = sc.events("git-refused")
    assert refused and refused[-1]["commit"] == sha2
    status = subprocess.run(
        [sys.executable, "-m", "sidecar", "status"],
        env=sc.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"at {sha[:12]}" in status and "last update refused" in status
    assert first != sha


def test_a_failed_build_keeps_the_old_version_and_rollback_restores_the_previous(
    workspace: Workspace, sidecar: SidecarFactory, remote: Remote, traefik: Traefik
) -> None:
    sc, api, host, first = start(workspace, sidecar, remote)
    wait_for(lambda: traefik.get(host) == (200, "v0"), 30, "v0 through traefik")
    good = remote.push(page(workspace, "v2"), "v2")
    assert hook(api, "github", remote, good)[0] == 202
    wait_for(lambda: traefik.get(host) == (200, "v2"), 60, "v2 served")
    wait_for(lambda: _deployed_commit(sc, "web") == good, 30, "v2's version has its commit")
    failed_before = len(sc.events("build-failed", "web"))
    broken = remote.push({"web/Dockerfile": "FROM scratch\nRUN false\n"}, "broken")
    assert hook(api, "github", remote, broken)[0] == 202
    wait_for(lambda: len(sc.events("build-failed", "web")) > failed_before, 60, "the failure")
    failure = sc.events("build-failed", "web")[-1]
    assert failure["commit"] == broken and failure["error"]
    assert traefik.get(host) == (200, "v2"), "the last good version keeps serving"
    with Load(traefik, host, rate=50) as load:
        answer = api.post("/v1/commands", {"action": "rollback", "service": "web"}, timeout=60)
        assert answer.status == 200 and answer.json()["ok"], answer.body
        wait_for(lambda: load.bodies(since=time.time() - 0.5) == {"v0"}, 30, "v0 again")
        time.sleep(1.0)
    assert load.failures() == [], f"{len(load.failures())} failed: {load.failures()[:5]}"
    assert _deployed_commit(sc, "web") == first, "the rolled-back version names its commit"
    builds_before = builds(sc, "web")
    answer = api.post("/v1/commands", {"action": "rollback", "service": "web"}, timeout=60)
    assert answer.status == 200 and not answer.json()["ok"], "nothing older is kept"
    assert "no earlier version" in answer.json()["message"]
    assert builds(sc, "web") == builds_before, "a rollback builds nothing"


def _deployed_commit(sc: Sidecar, service: str) -> str:
    number = sc.r.get(f"sidecar:{sc.ws.name}:version:{service}")
    raw = sc.r.hget(f"sidecar:{sc.ws.name}:versions:{service}", str(number)) if number else None
    return str(json.loads(str(raw)).get("commit", "")) if raw else ""
