"""The git delivery through its ports: a fake git, the fake store's hub, the fake clock.
What a user checks: the workspace moves to the pushed commit and the reactor hears which
files changed; anything unsafe is refused and reported; a remote that is away is retried
and reported once; pushes for other branches or repositories do nothing."""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import SecretStr

from sidecar.core.delivery import Move
from sidecar.core.hooks import Push, push_fields
from sidecar.core.keys import Keys
from sidecar.core.types import GitMoved
from sidecar.runtime.delivery import Delivery
from sidecar.settings import Settings
from tests.reactor.fake_git import FakeGit
from tests.reactor.fakes import FakeClock, FakeStore

REMOTE = "https://git.example/acme/shop.git"
C1, C2, C3, X = "1" * 40, "2" * 40, "3" * 40, "9" * 40


class World:
    def __init__(self, **settings: Any) -> None:
        self.git = FakeGit()
        self.git.commit(C1, {"web/index.html": "v1", "api/main.go": "v1"}, "first")
        self.git.head_sha = self.git.tracking_sha = self.git.applied_sha = C1
        self.store = FakeStore(Keys("sidecar", "shop"))
        self.clock = FakeClock()
        self.moved: list[GitMoved] = []
        self.events: list[dict[str, Any]] = []
        self.settings = Settings(git_remote=SecretStr(REMOTE), **settings)
        self.delivery = Delivery(
            self.settings,
            self.git,
            self.store,
            self.moved.append,
            lambda kind, service="", **f: self.events.append({"kind": kind, **f}),
            self.clock,
        )
        self.delivery.prepare()

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.events]

    def push(self, after: str, ref: str = "refs/heads/main", repo: str = REMOTE) -> None:
        push = Push("github", "d-" + after[:4], (repo,), ref, C1, after, False)
        self.store.add_entry(self.store.keys.hub, push_fields(push))


def test_a_push_moves_the_workspace_and_names_the_changed_files() -> None:
    w = World()
    w.git.commit(C2, {"web/index.html": "v2"}, "new page")
    decision = w.delivery.update("push")
    assert decision is not None and decision.move is Move.FAST_FORWARD
    assert w.git.head_sha == C2
    assert w.moved == [GitMoved(C1, C2, ("web/index.html",), "new page", "push")]
    assert w.kinds() == ["git-updated"] and w.events[0]["commit"] == C2
    assert w.store.git["commit"] == C2 and w.store.git["last_result"] == "updated"
    assert w.store.git["subject"] == "new page"


def test_an_update_to_where_the_workspace_is_does_nothing() -> None:
    w = World()
    decision = w.delivery.update("push")
    assert decision is not None and decision.move is Move.UP_TO_DATE
    assert w.moved == [] and w.events == []
    assert w.store.git["last_result"] == "up-to-date"


def test_a_dirty_workspace_is_refused_and_left_alone() -> None:
    w = World()
    w.git.dirty_paths = ["web/index.html"]
    w.git.commit(C2, {"web/index.html": "v2"})
    w.delivery.update("push")
    assert w.git.head_sha == C1 and w.moved == []
    assert w.kinds() == ["git-refused"] and "uncommitted" in w.events[0]["error"]
    assert w.store.git["last_result"] == "refused" and w.store.git["refused"] == C2


def test_local_commits_are_refused() -> None:
    w = World()
    w.git.commits[X] = type(w.git.commits[C1])(X, C1, {"web/index.html": "mine"}, "local")
    w.git.head_sha = X  # committed in the workspace, never pushed
    w.git.commit(C2, {"api/main.go": "v2"})  # the branch moved meanwhile
    w.delivery.update("poll")
    assert w.git.head_sha == X and w.moved == []
    assert "1 local commit not on main" in w.events[0]["error"]


def test_a_force_push_is_refused_unless_allowed() -> None:
    for allowed in (False, True):
        w = World(git_allow_force=allowed)
        w.git.commit(C2, {"web/index.html": "v2"})
        w.delivery.update("push")
        w.git.commit(C3, {"web/index.html": "rewritten"}, parent=C1)  # history rewritten
        w.delivery.update("push")
        if allowed:
            assert w.git.head_sha == C3 and w.moved[-1].new == C3
            assert w.kinds() == ["git-updated", "git-updated"]
        else:
            assert w.git.head_sha == C2 and len(w.moved) == 1
            assert w.kinds() == ["git-updated", "git-refused"]
            assert "force-push" in w.events[-1]["error"]


def test_a_refused_rewrite_is_followed_later_when_allowed() -> None:
    """The refused fetch moved the tracking ref: counted against it, the workspace's own
    (deployed) commit looked like a local commit and the rewrite was refused for good."""
    w = World()
    w.git.commit(C2, {"web/index.html": "v2"})
    w.delivery.update("push")
    w.git.commit(C3, {"web/index.html": "rewritten"}, parent=C1)
    w.delivery.update("push")
    assert w.kinds()[-1] == "git-refused" and "force-push" in w.events[-1]["error"]
    w.settings = w.settings.model_copy(update={"git_allow_force": True})
    w.delivery.settings = w.settings
    w.delivery.update("start-up")
    assert w.git.head_sha == C3 and w.kinds()[-1] == "git-updated"


def test_a_remote_that_is_away_is_reported_once_and_backed_off() -> None:
    w = World(git_poll_s=60)
    w.git.reachable = False
    for _ in range(3):
        assert w.delivery.update("poll") is None
    assert w.kinds() == ["git-failed"]  # once, when it starts failing
    assert "u:***@" in w.events[0]["error"]
    assert w.delivery._poll_wait() == 480.0 and w.store.git["last_result"] == "failed"
    w.git.reachable = True
    w.git.commit(C2, {"api/main.go": "v2"})
    w.delivery.poll()
    assert w.git.head_sha == C2 and w.delivery.failures == 0
    assert w.delivery._poll_wait() == 60.0


def test_the_thread_acts_on_pushes_for_its_branch_only() -> None:
    w = World(git_updates="webhook")
    stop = threading.Event()
    thread = threading.Thread(target=w.delivery.run, args=(stop,), daemon=True)
    thread.start()
    try:
        _until(lambda: w.git.calls.count("fetch") == 1)  # the start-up look
        w.git.commit(C2, {"web/index.html": "v2"})
        w.push(C2, ref="refs/heads/dev")
        w.push(C2, repo="https://git.example/acme/other.git")
        w.push(C2, ref="refs/tags/v2")
        time.sleep(0.05)
        assert w.moved == [] and w.git.calls.count("fetch") == 1
        w.push(C2)
        _until(lambda: len(w.moved) == 1)
        assert w.moved[0].new == C2 and w.moved[0].reason == "push 222222222222 (github)"
        w.push(C2)  # the same commit again (a redelivery with a new id): nothing
        time.sleep(0.05)
        assert len(w.moved) == 1 and w.git.calls.count("fetch") == 2
    finally:
        stop.set()
        w.delivery.interrupt()
        thread.join(5)
    assert not thread.is_alive()


def test_polling_finds_a_commit_without_any_webhook() -> None:
    w = World(git_updates="poll", git_poll_s=60)
    w.git.commit(C2, {"api/main.go": "v2"})
    w.delivery.poll()
    assert w.git.head_sha == C2 and [m.paths for m in w.moved] == [("api/main.go",)]


def test_an_empty_workspace_is_cloned_before_the_project_loads() -> None:
    w = World()
    w.git.repository = False
    w.git.head_sha = ""
    assert w.delivery.prepare() == C1 and w.git.calls[-1] == "clone"


def _until(check: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.002)
    raise AssertionError("condition not reached")


def test_the_watchers_batch_waits_while_the_git_thread_moves_the_tree(tmp_path: Any) -> None:
    """The batch of the merge's own files was released between the merge and the hand-over:
    the build started without its commit, and the commit's own batch found nothing."""
    from tests.reactor.conftest import World as ReactorWorld

    world = ReactorWorld(tmp_path, git_remote=SecretStr(REMOTE))
    world.git = FakeGit()
    world.git.commit(C1, {"web/www/index.html": "v1"})
    world.git.head_sha = world.git.applied_sha = C1
    world.served("web", replicas=1)
    world.start()
    delivery = world.d.delivery
    assert delivery is not None
    delivery.moving.set()  # the merge has written the files; GitMoved is not posted yet
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert "build-started" not in world.store.kinds("web")[-3:], "held while moving"
    delivery.moving.clear()
    world.d.queue.put(GitMoved(C1, C2, ("web/www/index.html",), "v2", "push"))
    world.settle()
    started = [e for e in world.store.events if e["kind"] == "build-started"]
    assert started and C2[:12] in started[-1]["reason"]
