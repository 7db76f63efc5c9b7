"""The planner's decisions as tables: project changes, orphans, the job queue, digests."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sidecar.core.model import Project, ServiceSpec, parse_project
from sidecar.core.planner import (
    Action,
    Batch,
    Digests,
    Job,
    JobQueue,
    Kind,
    Lane,
    changed_digests,
    lane_of,
    plan_orphans,
    plan_project_change,
    plan_rollout,
    plan_scale,
    scan_diff,
)
from sidecar.core.serving import ServeSpec


def built(
    name: str, digest: str = "d1", context: str | None = None, serve: ServeSpec | None = None
) -> ServiceSpec:
    ctx = context or f"/ws/{name}"
    return ServiceSpec(
        name=name,
        context=ctx,
        dockerfile=f"{ctx}/Dockerfile",
        config_digest=digest,
        serve=serve,
        serve_digest="s1" if serve else "",
    )


def image(name: str, digest: str = "d1") -> ServiceSpec:
    return ServiceSpec(name=name, image=f"{name}:latest", config_digest=digest)


SERVE = ServeSpec(port=8080)


def served(
    name: str, digest: str = "d1", serve_digest: str = "s1", context: str | None = None
) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        context=context,
        dockerfile=f"{context}/Dockerfile" if context else None,
        image=f"{name}:latest",
        config_digest=digest,
        serve=SERVE,
        serve_digest=serve_digest,
    )


def broken(name: str, digest: str = "d9") -> ServiceSpec:
    """A service whose x-sidecar is invalid."""
    return ServiceSpec(name=name, image="x", config_digest=digest, serve_error="invalid x-sidecar")


def proj(*services: ServiceSpec) -> Project:
    return Project("demo", "/ws", ("/ws/compose.yaml",), {s.name: s for s in services})


def kinds(actions: list[Action]) -> list[tuple[Kind, str]]:
    return [(a.kind, a.service) for a in actions]


B, U, R, RO, C = Kind.BUILD, Kind.UP, Kind.REMOVE, Kind.ROLLOUT, Kind.CONVERGE

PLAN_CASES: list[tuple[str, Project | None, Project, list[tuple[Kind, str]]]] = [
    ("first load", None, proj(built("web"), image("db")), [(U, "db"), (B, "web")]),
    ("first load, empty", None, proj(), []),
    ("added built service", proj(), proj(built("web")), [(B, "web")]),
    ("added image-only service", proj(), proj(image("db")), [(U, "db")]),
    ("removed", proj(built("web"), image("db")), proj(built("web")), [(R, "db")]),
    ("removed all", proj(built("a"), built("b")), proj(), [(R, "a"), (R, "b")]),
    ("unchanged", proj(built("web"), image("db")), proj(built("web"), image("db")), []),
    ("definition changed", proj(built("web", "d1")), proj(built("web", "d2")), [(U, "web")]),
    ("image-only changed", proj(image("db", "d1")), proj(image("db", "d2")), [(U, "db")]),
    (
        "build context changed",
        proj(built("web", "d1")),
        proj(built("web", "d2", context="/ws/web2")),
        [(B, "web")],
    ),
    (
        "dockerfile changed",
        proj(built("web", "d1")),
        proj(ServiceSpec("web", "/ws/web", "/ws/web/Dockerfile.dev", config_digest="d2")),
        [(B, "web")],
    ),
    (
        "image-only gains a build",
        proj(image("web", "d1")),
        proj(built("web", "d2")),
        [(B, "web")],
    ),
    ("built becomes image-only", proj(built("web", "d1")), proj(image("web", "d2")), [(U, "web")]),
    (
        "removals first, then the rest by name",
        proj(built("old"), built("web", "d1"), image("cache")),
        proj(built("web", "d2"), image("cache"), built("api"), image("zz")),
        [(R, "old"), (B, "api"), (U, "web"), (U, "zz")],
    ),
    # served services (x-sidecar)
    ("added served image-only", proj(), proj(served("web")), [(C, "web")]),
    ("added served built", proj(), proj(built("web", serve=SERVE)), [(B, "web")]),
    (
        "served definition changed",
        proj(served("web", "d1")),
        proj(served("web", "d2")),
        [(RO, "web")],
    ),
    (
        "served build context changed",
        proj(served("web", "d1", context="/ws/a")),
        proj(served("web", "d2", context="/ws/b")),
        [(B, "web")],
    ),
    (
        "only serving settings changed",
        proj(served("web", "d1", "s1")),
        proj(served("web", "d1", "s2")),
        [(C, "web")],
    ),
    ("becomes served", proj(image("web", "d1")), proj(served("web", "d1", "")), [(C, "web")]),
    ("served, unchanged", proj(served("web")), proj(served("web")), []),
    # invalid x-sidecar: left exactly as it is
    ("invalid x-sidecar added", proj(), proj(broken("web")), []),
    ("invalid x-sidecar changed", proj(served("web", "d1")), proj(broken("web", "d2")), []),
    ("invalid x-sidecar removed", proj(broken("web")), proj(), [(R, "web")]),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [pytest.param(old, new, exp, id=name) for name, old, new, exp in PLAN_CASES],
)
def test_plan_project_change(
    old: Project | None, new: Project, expected: list[tuple[Kind, str]]
) -> None:
    actions = plan_project_change(old, new)
    assert kinds(actions) == expected
    assert all(a.reason for a in actions)


def test_plan_reasons_are_distinct_per_cause() -> None:
    actions = plan_project_change(
        proj(built("gone"), built("web", "d1")), proj(built("web", "d2"), built("new"))
    )
    reasons = {a.service: a.reason for a in actions}
    assert len(set(reasons.values())) == 3


def _compose_service(build: dict[str, Any]) -> Project:
    return parse_project(
        {"name": "demo", "services": {"web": {"build": build, "image": "demo/web"}}},
        ("/ws/compose.yaml",),
    )


def test_plan_from_parsed_projects_context_change_builds() -> None:
    old = _compose_service({"context": "/ws/web"})
    new = _compose_service({"context": "/ws/web-v2"})
    assert kinds(plan_project_change(old, new)) == [(B, "web")]


def test_plan_from_parsed_projects_environment_change_recreates() -> None:
    svc: dict[str, Any] = {"build": {"context": "/ws/web"}, "environment": {"A": "1"}}
    old = parse_project({"services": {"web": svc}}, ("/ws/compose.yaml",))
    svc2 = {**svc, "environment": {"A": "2"}}
    new = parse_project({"services": {"web": svc2}}, ("/ws/compose.yaml",))
    assert kinds(plan_project_change(old, new)) == [(U, "web")]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"context": "/ws/web", "args": {"V": "1"}}, {"context": "/ws/web", "args": {"V": "2"}}),
        ({"context": "/ws/web", "target": "dev"}, {"context": "/ws/web", "target": "prod"}),
        (
            {"context": "/ws/web", "dockerfile_inline": "FROM alpine:3.19"},
            {"context": "/ws/web", "dockerfile_inline": "FROM alpine:3.20"},
        ),
    ],
)
def test_plan_build_section_change_rebuilds(before: dict[str, Any], after: dict[str, Any]) -> None:
    actions = plan_project_change(_compose_service(before), _compose_service(after))
    assert kinds(actions) == [(B, "web")]


@pytest.mark.parametrize(
    ("services", "running", "expected"),
    [
        (["web", "db"], ["web", "db"], []),
        (["web", "db"], [], []),
        (["web"], ["web", "old", "zombie"], ["old", "zombie"]),
        (["web"], ["zombie", "old", "old"], ["old", "zombie"]),
        ([], ["a"], ["a"]),
    ],
)
def test_plan_orphans(services: list[str], running: list[str], expected: list[str]) -> None:
    project = proj(*(image(s) for s in services))
    actions = plan_orphans(project, running)
    assert kinds(actions) == [(R, s) for s in expected]


# ---- JobQueue -----------------------------------------------------------------------------------


def names(started: list[Job]) -> list[str]:
    return [j.service for j in started]


@pytest.mark.parametrize("concurrency", [1, 2, 3, 8])
def test_queue_respects_the_concurrency_cap(concurrency: int) -> None:
    q = JobQueue(concurrency=concurrency)
    services = [f"s{i}" for i in range(10)]
    for s in services:
        q.request(s, "changed")
    started = names(q.start())
    assert started == services[:concurrency]
    assert q.start() == []  # nothing more until one finishes
    assert len(q.running) == concurrency
    q.finished(started[0])
    assert names(q.start()) == [services[concurrency]]
    assert len(q.running) == concurrency


def test_queue_request_defaults_to_build() -> None:
    q = JobQueue(concurrency=1)
    q.request("web", "files changed")
    assert q.start() == [Job("web", Kind.BUILD, "files changed")]
    assert q.running == {"web": Kind.BUILD}


def test_queue_starts_in_request_order() -> None:
    q = JobQueue(concurrency=1)
    for s in ["c", "a", "b"]:
        q.request(s, "r")
    order = []
    while not q.idle:
        (svc, *_), *rest = q.start()
        assert rest == []
        order.append(svc)
        q.finished(svc)
    assert order == ["c", "a", "b"]


def test_queue_dedupes_waiting_requests() -> None:
    q = JobQueue(concurrency=4)
    for _ in range(5):
        q.request("web", "r")
    assert q.start() == [Job("web", Kind.BUILD, "r")]
    assert q.start() == []


@pytest.mark.parametrize(
    ("requests", "expected"),
    [
        ([U, B], B),
        ([B, U], B),
        ([C, U, C], U),
        ([C, RO, U], RO),
        ([U, C], U),
        ([C], C),
    ],
)
def test_queue_biggest_kind_wins_in_place(requests: list[Kind], expected: Kind) -> None:
    q = JobQueue(concurrency=1)
    q.request("first", "r", C)
    for kind in requests:
        q.request("web", kind.value, kind)
    q.request("last", "r", C)
    # still queued at its first position, with the biggest kind and that kind's reason
    assert list(q.waiting) == ["first", "web", "last"]
    assert q.waiting["web"] == Job("web", expected, expected.value)


@pytest.mark.parametrize("repeats", [1, 2, 10, 500])
def test_queue_exactly_one_followup_while_running(repeats: int) -> None:
    q = JobQueue(concurrency=2)
    q.request("web", "first")
    assert names(q.start()) == ["web"]
    for i in range(repeats):
        q.request("web", f"change {i}", U if i % 2 else C)
    assert q.start() == []  # never twice at once
    q.finished("web")
    expected = U if repeats > 1 else C
    assert [(s, k) for s, k, *_ in q.start()] == [("web", expected)]  # the one follow-up
    q.finished("web")
    assert q.start() == []
    assert q.idle


def test_queue_followup_without_new_requests_is_not_invented() -> None:
    q = JobQueue(concurrency=1)
    q.request("web", "r")
    q.start()
    q.finished("web")
    assert q.idle
    assert q.start() == []


def test_queue_followup_waits_behind_earlier_requests() -> None:
    q = JobQueue(concurrency=1)
    q.request("a", "r")
    assert names(q.start()) == ["a"]
    q.request("b", "r")  # requested before a's follow-up
    q.request("a", "again")
    q.finished("a")
    assert names(q.start()) == ["b"]
    q.finished("b")
    assert names(q.start()) == ["a"]


def test_queue_forget_drops_waiting_and_followups() -> None:
    q = JobQueue(concurrency=1)
    q.request("a", "r")
    q.request("b", "r")
    q.request("c", "r")
    assert names(q.start()) == ["a"]
    q.request("a", "again")
    q.forget("a")  # gone while running: its job finishes, no follow-up
    q.forget("b")  # gone while waiting
    assert "a" in q.running
    q.finished("a")
    assert names(q.start()) == ["c"]
    q.finished("c")
    assert q.idle


def test_queue_forget_unknown_is_harmless() -> None:
    q = JobQueue(concurrency=1)
    q.forget("nope")
    q.finished("nope")
    assert q.idle


def test_queue_idle() -> None:
    q = JobQueue(concurrency=1)
    assert q.idle
    q.request("a", "r")
    assert not q.idle
    q.start()
    assert not q.idle
    q.finished("a")
    assert q.idle


@pytest.mark.parametrize("seed", range(5))
def test_queue_invariants_under_random_traffic(seed: int) -> None:
    rng = random.Random(seed)
    concurrency = rng.randint(1, 3)
    q = JobQueue(concurrency=concurrency)
    services = ["a", "b", "c", "d", "e"]
    requested_while_running: dict[str, bool] = {}
    for _ in range(400):
        op = rng.random()
        if op < 0.5:
            s = rng.choice(services)
            q.request(s, "r", rng.choice([B, U, RO, C]))
            if s in q.running:
                requested_while_running[s] = True
        elif op < 0.8:
            for s, *_ in q.start():
                requested_while_running[s] = False
        elif q.running:
            s = rng.choice(sorted(q.running))
            followup = requested_while_running.pop(s, False)
            q.finished(s)
            # a request during the job leaves exactly one more job queued
            assert (s in q.waiting) is followup
        work = [k for k in q.running.values() if lane_of(k) is Lane.WORK]
        assert len(work) <= concurrency
        assert len(q.running) - len(work) <= q.repair_concurrency
        assert not (q.running.keys() & q.waiting.keys())
        assert q.followups.keys() <= q.running.keys()


def test_repairs_do_not_wait_behind_builds() -> None:
    """Two slow builds fill the work lane; a crashed instance's converge starts at once."""
    q = JobQueue(concurrency=2, repair_concurrency=1)
    q.request("a", "files changed")
    q.request("b", "files changed")
    assert names(q.start()) == ["a", "b"]
    q.request("c", "files changed")
    q.request("web", "docker event: die", C, quiet=True)
    assert q.start() == [Job("web", C, "docker event: die", True)]
    q.request("api", "docker event: die", C, quiet=True)
    assert q.start() == []  # the repair lane is full too
    q.finished("web")
    assert names(q.start()) == ["api"]
    q.finished("a")
    assert names(q.start()) == ["c"]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # (kind, reason, quiet) twice -> the one job that runs
        ((C, "periodic", True), (C, "event", True), Job("web", C, "periodic", True)),
        ((C, "periodic", True), (C, "command", False), Job("web", C, "command", False)),
        ((C, "command", False), (C, "periodic", True), Job("web", C, "command", False)),
        ((C, "event", True), (B, "files", False), Job("web", B, "files", False)),
        ((B, "files", False), (C, "event", True), Job("web", B, "files", False)),
        ((U, "restart", True), (C, "command", False), Job("web", U, "command", False)),
    ],
)
def test_queue_merge_is_loud_when_either_request_is(
    first: tuple[Kind, str, bool], second: tuple[Kind, str, bool], expected: Job
) -> None:
    q = JobQueue(concurrency=1)
    for kind, reason, quiet in (first, second):
        q.request("web", reason, kind, quiet=quiet)
    assert q.waiting["web"] == expected


# ---- rollout and scale plans ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "replicas", "parallelism"),
    [
        (0, 0, 1),
        (0, 3, 1),
        (3, 0, 1),
        (1, 1, 1),
        (3, 3, 1),
        (3, 3, 2),
        (3, 3, 5),
        (5, 2, 2),
        (1, 5, 2),
        (4, 4, 4),
        (7, 3, 3),
    ],
)
def test_plan_rollout_replaces_everything_without_losing_capacity(
    old: int, replicas: int, parallelism: int
) -> None:
    instances = [f"c{i}" for i in range(old)]
    batches = plan_rollout(instances, replicas, parallelism)
    assert sum(b.start for b in batches) == replicas
    assert [c for b in batches for c in b.retire] == instances  # oldest first, each once
    assert all(b.start <= parallelism and len(b.retire) <= parallelism for b in batches)
    assert all(b.start or b.retire for b in batches)
    capacity = old
    for b in batches:
        capacity += b.start - len(b.retire)
        assert capacity >= min(old, replicas)
    assert capacity == replicas


@pytest.mark.parametrize(
    ("current", "replicas", "expected"),
    [
        (["a", "b"], 2, Batch(0, ())),
        (["a"], 3, Batch(2, ())),
        ([], 1, Batch(1, ())),
        (["a", "b", "c"], 1, Batch(0, ("b", "c"))),
        (["a", "b"], 0, Batch(0, ("a", "b"))),
    ],
)
def test_plan_scale(current: list[str], replicas: int, expected: Batch) -> None:
    assert plan_scale(current, replicas) == expected


# ---- digests -----------------------------------------------------------------------------------

CHANGED_CASES: list[tuple[str, Digests, Digests, Digests]] = [
    ("touch / same bytes", {"a": "h1"}, {"a": "h1"}, {}),
    ("content change", {"a": "h2"}, {"a": "h1"}, {"a": "h2"}),
    ("new file", {"b": "h1"}, {}, {"b": "h1"}),
    ("deleted file", {"a": None}, {"a": "h1"}, {"a": None}),
    ("deleted, never known", {"a": None}, {}, {}),
    ("deleted, known deleted", {"a": None}, {"a": None}, {}),
    ("recreated", {"a": "h1"}, {"a": None}, {"a": "h1"}),
    ("unobserved known files are not reported", {}, {"a": "h1"}, {}),
    (
        "mixed",
        {"same": "h", "mod": "h2", "gone": None, "new": "h3"},
        {"same": "h", "mod": "h1", "gone": "h4", "other": "h5"},
        {"mod": "h2", "gone": None, "new": "h3"},
    ),
]


@pytest.mark.parametrize(
    ("observed", "known", "expected"),
    [pytest.param(o, k, e, id=name) for name, o, k, e in CHANGED_CASES],
)
def test_changed_digests(observed: Digests, known: Digests, expected: Digests) -> None:
    assert changed_digests(observed, known) == expected


SCAN_CASES: list[tuple[str, dict[str, str], dict[str, str], Digests]] = [
    ("nothing changed", {"a": "1", "b": "2"}, {"a": "1", "b": "2"}, {}),
    ("nothing at all", {}, {}, {}),
    ("new file", {"a": "1", "c": "3"}, {"a": "1"}, {"c": "3"}),
    ("changed file", {"a": "9"}, {"a": "1"}, {"a": "9"}),
    ("deleted file", {}, {"a": "1"}, {"a": None}),
    ("never built", {"a": "1", "b": "2"}, {}, {"a": "1", "b": "2"}),
    (
        "all at once",
        {"same": "s", "changed": "c2", "new": "n"},
        {"same": "s", "changed": "c1", "deleted": "d"},
        {"changed": "c2", "new": "n", "deleted": None},
    ),
]


@pytest.mark.parametrize(
    ("scanned", "committed", "expected"),
    [pytest.param(s, c, e, id=name) for name, s, c, e in SCAN_CASES],
)
def test_scan_diff(scanned: dict[str, str], committed: dict[str, str], expected: Digests) -> None:
    assert scan_diff(scanned, committed) == expected
