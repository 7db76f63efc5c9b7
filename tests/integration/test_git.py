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

from sidecar.core.hooks import sign
from testkit.git import Remote, git, push_hook
from testkit.http_api import Api, raw, status_of
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
    refused = wait_for(lambda: sc.events("git-refused"), 10, "the git-refused event")
    assert refused[-1]["commit"] == sha2
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
    tags = subprocess.run(
        ["docker", "images", f"{workspace.name}-web", "--format", "{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    kept = sorted(t for t in tags if t.startswith("sidecar-v"))
    assert kept == ["sidecar-v1", "sidecar-v2", "sidecar-v3"], tags  # images_kept=3


def _deployed_commit(sc: Sidecar, service: str) -> str:
    number = sc.r.get(f"sidecar:{sc.ws.name}:version:{service}")
    raw = sc.r.hget(f"sidecar:{sc.ws.name}:versions:{service}", str(number)) if number else None
    return str(json.loads(str(raw)).get("commit", "")) if raw else ""


def test_bad_hooks_are_refused_and_a_remote_that_goes_away_is_reported(
    workspace: Workspace, sidecar: SidecarFactory, remote: Remote
) -> None:
    sc, api, _, _ = start(workspace, sidecar, remote, git_poll_s="1")
    # above hook_max_body (1 MiB): refused from its Content-Length, before a byte is read
    head = (
        b"POST /v1/hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: push\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
    )
    assert status_of(raw(api.port, head)) == 413
    body = b"{not json"
    headers = {"X-GitHub-Event": "push", **sign("github", body, SECRET)}
    answer = api.post("/v1/hooks/github", body, token=None, headers=headers)
    assert answer.status == 400 and "JSON" in answer.json()["error"]
    answer = api.post("/v1/hooks/github", b"{}", token=None, headers={"X-GitHub-Event": "push"})
    assert (answer.status, answer.json()) == (401, {"error": "unauthorized"})
    # the remote goes away: reported (once), retried, and nothing running is touched
    moved = remote.bare.with_name("elsewhere.git")
    remote.bare.rename(moved)
    try:
        wait_for(lambda: git_state(sc).get("last_result") == "failed", 30, "the failure seen")
        assert git_state(sc)["last_error"], "git's own reason"
        # the state is written just before the event: wait for it, then check it is one
        wait_for(lambda: sc.events("git-failed"), 10, "the git-failed event")
        time.sleep(2.5)  # two more failed polls (backed off): still one event
        assert len(sc.events("git-failed")) == 1
        assert converged(sc, "web", 2) and converged(sc, "api", 1)
    finally:
        moved.rename(remote.bare)
    sha = remote.push({"api/www/index.html": "api v2\n"}, "api v2")
    wait_for(lambda: git_state(sc).get("commit") == sha, 60, "the remote back, the push found")
    assert sc.proc is not None and sc.proc.poll() is None, "the daemon survived all of it"


def test_one_endpoint_serves_another_sidecar_through_the_hub(
    workspace: Workspace,
    sidecar: SidecarFactory,
    remote: Remote,
    tmp_path: Path,
    redis_server: Any,
) -> None:
    sc, api, _, _ = start(workspace, sidecar, remote)
    other_ws = Workspace(tmp_path / "other", f"{workspace.name[:20]}b")
    other_remote = Remote(tmp_path / "other-remote")
    (tmp_path / "other-remote").mkdir()
    other = Sidecar(
        other_ws,
        redis_server.url,
        tmp_path / "other.log",
        http_listen="",  # no HTTP server of its own: the hub brings its pushes
        git_remote=other_remote.url,
        git_updates="webhook",
        git_poll_s="3600",
    )
    try:
        served(other_ws, "shop", replicas=1, **FAST)
        other_ws.write_compose()
        other_remote.publish(other_ws.root)
        other.start()
        wait_for(lambda: converged(other, "shop", 1), 60, "the other project serving")
        wait_for(lambda: git_state(other).get("last_result") == "up-to-date", 30, "its look")
        sha = other_remote.push({"shop/www/index.html": "shop v2\n"}, "shop v2")
        status, answer = hook(api, "github", other_remote, sha)
        assert status == 202 and answer["result"] == "ignored" and answer["published"]
        wait_for(lambda: git_state(other).get("commit") == sha, 30, "the other sidecar moved")
        wait_for(lambda: _deployed_commit(other, "shop") == sha, 60, "and deployed it")
        assert git_state(sc).get("commit") != sha, "the first sidecar follows its own remote"
    finally:
        other.stop()
        other.cleanup_keys()
        other_ws.cleanup()


def test_a_force_push_is_refused_unless_allowed(
    workspace: Workspace, sidecar: SidecarFactory, remote: Remote
) -> None:
    sc, api, _, first = start(workspace, sidecar, remote)
    sha = remote.push({"api/www/index.html": "api v2\n"}, "api v2")
    assert hook(api, "github", remote, sha)[0] == 202
    wait_for(lambda: git_state(sc).get("commit") == sha, 30, "the workspace at v2")
    # history rewritten: v2 replaced by another commit on top of the first
    git(remote.dev, "reset", "-q", "--hard", first)
    (remote.dev / "api/www/index.html").write_text("api v2, rewritten\n")
    git(remote.dev, "commit", "-q", "-am", "api v2 rewritten")
    git(remote.dev, "push", "-q", "--force", "origin", "HEAD:refs/heads/main")
    rewritten = remote.head()
    assert hook(api, "github", remote, rewritten)[0] == 202
    wait_for(lambda: git_state(sc).get("last_result") == "refused", 30, "the force-push refused")
    assert "force-push" in git_state(sc)["last_error"]
    assert git(workspace.root, "rev-parse", "HEAD") == sha
    # allowed: the next start-up look follows it (the workspace is clean)
    sc.stop()
    follower = sidecar(
        http_listen="", git_remote=remote.url, git_allow_force="true", git_poll_s="3600"
    )
    follower.start()
    wait_for(lambda: git_state(follower).get("commit") == rewritten, 30, "the rewrite followed")
    assert git(workspace.root, "rev-parse", "HEAD") == rewritten
    wait_for(lambda: _deployed_commit(follower, "api") == rewritten, 60, "api rebuilt from it")


def test_a_commit_that_breaks_the_compose_file_keeps_the_last_good_model(
    workspace: Workspace, sidecar: SidecarFactory, remote: Remote
) -> None:
    sc, api, _, _ = start(workspace, sidecar, remote)
    invalid_before = len(sc.events("project-invalid"))
    broken = remote.push({"compose.yaml": "services: [this is not, a mapping\n"}, "oops")
    assert hook(api, "github", remote, broken)[0] == 202
    wait_for(lambda: git_state(sc).get("commit") == broken, 30, "the workspace at the commit")
    wait_for(
        lambda: len(sc.events("project-invalid")) > invalid_before, 30, "the bad model reported"
    )
    assert converged(sc, "web", 2) and converged(sc, "api", 1), "both keep serving"
    # the fix: a revert, pushed; the project is good again and nothing was lost
    reloads = len(sc.events("project-reloaded"))
    git(remote.dev, "revert", "--no-edit", "HEAD")
    git(remote.dev, "push", "-q", "origin", "HEAD:refs/heads/main")
    fixed = remote.head()
    assert hook(api, "github", remote, fixed)[0] == 202
    wait_for(lambda: git_state(sc).get("commit") == fixed, 30, "the workspace at the fix")
    wait_for(lambda: len(sc.events("project-reloaded")) > reloads, 30, "the model reloaded")
    assert converged(sc, "web", 2) and converged(sc, "api", 1)
