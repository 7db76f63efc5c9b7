"""develop.watch decisions (sidecar.core.syncing, the rule checks of core.model and the rule
hits of core.mapping) as tables of plain data."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.core.ignore import DockerIgnore, IgnoreList
from sidecar.core.mapping import CONTEXT, PathMapper
from sidecar.core.model import parse_project, raw_watch_errors, watch_error
from sidecar.core.syncing import (
    SyncRecord,
    WatchWork,
    exec_rules_fired,
    payload,
    plan_watch,
    restart_after_sync,
    sync_diff,
)

SYNC = {"action": "sync", "path": "./web/www", "target": "/www"}


def spec_of(rules: list[dict[str, Any]], build: bool = True) -> Any:
    svc: dict[str, Any] = {"develop": {"watch": rules}}
    if build:
        svc["build"] = {"context": "/ws/web"}
    else:
        svc["image"] = "busybox"
    return parse_project({"name": "p", "working_dir": "/ws", "services": {"web": svc}}).services[
        "web"
    ]


# --- rule validation ----------------------------------------------------------------------
WATCH_ERRORS: list[tuple[Any, bool, str | None]] = [
    (None, True, None),
    ({"watch": [SYNC]}, True, None),
    ({"watch": [SYNC, {"action": "rebuild", "path": "./web"}]}, True, None),
    ({"watch": [{"action": "sync", "path": "./www"}]}, True, "develop.watch[0].target"),
    ({"watch": [SYNC, {"action": "bogus", "path": "."}]}, True, "develop.watch[1].action"),
    ({"watch": [{"action": "rebuild", "path": "."}]}, False, "rebuild needs a build"),
    ({"watch": [{**SYNC, "action": "sync+exec"}]}, True, "develop.watch[0].exec.command"),
    ({"watch": [{**SYNC, "action": "sync+exec", "exec": {"command": ["x"]}}]}, True, None),
    ({"watch": [{**SYNC, "action": "sync+exec", "exec": "kill -HUP 1"}]}, True, ".exec must be"),
    ({"watch": [{**SYNC, "exec": ["x"]}]}, True, "develop.watch[0].exec must be a mapping"),
    ({"watch": [{"action": "sync", "target": "/www"}]}, True, "develop.watch[0].path"),
    ({"watch": [{**SYNC, "ignore": "*.md"}]}, True, "develop.watch[0].ignore"),
    ({"watch": [{**SYNC, "include": "*.md"}]}, True, "develop.watch[0].include"),
    ({"watch": "nope"}, True, "develop.watch must be a list"),
    ("nope", True, "develop must be a mapping"),
]


@pytest.mark.parametrize(("develop", "built", "expected"), WATCH_ERRORS)
def test_watch_rules_are_checked_naming_service_rule_and_field(
    develop: Any, built: bool, expected: str | None
) -> None:
    error = watch_error("web", develop, built)
    if expected is None:
        assert error is None
    else:
        assert error is not None and "service web" in error and expected in error


def test_an_invalid_rule_leaves_the_model_without_rules_and_says_why() -> None:
    spec = spec_of([{"action": "sync", "path": "./www"}])
    assert spec.watch == () and spec.invalid and "target" in spec.invalid


def test_raw_yaml_errors_name_the_service_compose_refused() -> None:
    docs = [
        {"services": {"web": {"build": ".", "develop": {"watch": [{"action": "x", "path": "."}]}}}},
        {"services": {"ok": {"image": "a"}, "bad": "not a mapping"}},
        None,
    ]
    errors = raw_watch_errors(docs)
    assert list(errors) == ["web"] and "develop.watch[0].action" in errors["web"]


def test_exec_fields_are_parsed_as_compose_prints_them() -> None:
    rule = {
        **SYNC,
        "action": "sync+exec",
        "exec": {
            "command": "kill -HUP 1",
            "user": "root",
            "privileged": True,
            "working_dir": "/app",
            "environment": {"A": "1", "B": None},
        },
        "initial_sync": True,
        "include": ["*.html"],
    }
    [parsed] = spec_of([rule]).watch
    assert parsed.exec is not None
    assert parsed.exec.command == ("kill", "-HUP", "1")
    assert (parsed.exec.user, parsed.exec.privileged, parsed.exec.working_dir) == (
        "root",
        True,
        "/app",
    )
    assert parsed.exec.environment == (("A", "1"), ("B", ""))
    assert parsed.initial_sync and parsed.include == ("*.html",)


# --- what a batch asks of a service --------------------------------------------------------
REB = {"action": "rebuild", "path": "./web/Dockerfile"}
RST = {"action": "restart", "path": "./web/conf"}
PLANS: list[tuple[list[dict[str, Any]], dict[int, set[str]], WatchWork]] = [
    ([SYNC, REB], {0: {"/ws/web/www/a"}}, WatchWork(sync=frozenset({"/ws/web/www/a"}))),
    ([SYNC, REB], {1: {"/ws/web/Dockerfile"}}, WatchWork(rebuild=True)),
    ([SYNC, REB], {CONTEXT: {"/ws/web/Dockerfile"}}, WatchWork(rebuild=True)),
    ([SYNC, RST], {2: {"/x"}}, WatchWork()),  # no such rule: nothing
    ([SYNC, RST], {1: {"/ws/web/conf/a"}}, WatchWork(restart=True)),
    # every matching rule applies, as in compose
    (
        [SYNC, {"action": "rebuild", "path": "./web/www"}],
        {0: {"/ws/web/www/a"}, 1: {"/ws/web/www/a"}},
        WatchWork(rebuild=True, sync=frozenset({"/ws/web/www/a"})),
    ),
    ([{**SYNC, "action": "sync+restart"}], {0: {"/p"}}, WatchWork(sync=frozenset({"/p"}))),
    ([SYNC], {0: set()}, WatchWork()),
]


@pytest.mark.parametrize(("rules", "hits", "expected"), PLANS)
def test_plan_watch(
    rules: list[dict[str, Any]], hits: dict[int, set[str]], expected: WatchWork
) -> None:
    assert plan_watch(spec_of(rules), hits) == expected


def test_a_service_without_rules_rebuilds_on_its_context() -> None:
    spec = parse_project(
        {"name": "p", "working_dir": "/ws", "services": {"web": {"build": "./web"}}}
    ).services["web"]
    assert plan_watch(spec, {CONTEXT: {"/ws/web/a"}}) == WatchWork(rebuild=True)


def test_restart_and_exec_follow_only_rules_that_synced_something() -> None:
    spec = spec_of(
        [
            {**SYNC, "action": "sync+restart"},
            {**SYNC, "path": "./web/js", "action": "sync+exec", "exec": {"command": ["r"]}},
            {**SYNC, "path": "./web/css", "action": "sync+exec", "exec": {"command": ["c"]}},
        ]
    )
    assert restart_after_sync(spec, {0: 2}) and not restart_after_sync(spec, {1: 3})
    assert exec_rules_fired(spec, {1: 1, 2: 0}) == [1]
    assert exec_rules_fired(spec, {}) == []


# --- what each container receives ----------------------------------------------------------
D = dict[str, str | None]
DIFFS: list[tuple[D, D, D, D]] = [
    ({"a": "1"}, {}, {"a": "1"}, {}),  # the image has it: a touch
    ({"a": "2"}, {}, {"a": "1"}, {"a": "2"}),
    ({"a": "2"}, {"a": "2"}, {"a": "1"}, {}),  # synced before
    ({"a": "3"}, {"a": "2"}, {"a": "1"}, {"a": "3"}),
    ({"a": None}, {"a": "2"}, {"a": "1"}, {"a": None}),  # deleted
    ({"a": None}, {"a": None}, {"a": "1"}, {}),  # deleted already
    ({"n": "1"}, {}, {}, {"n": "1"}),  # unknown to the image: sent
    ({"a": "1"}, {"a": None}, {"a": "1"}, {"a": "1"}),  # back after a delete
]


@pytest.mark.parametrize(("observed", "record", "image", "expected"), DIFFS)
def test_sync_diff(
    observed: dict[str, str | None],
    record: dict[str, str | None],
    image: dict[str, str | None],
    expected: dict[str, str | None],
) -> None:
    assert sync_diff(observed, record, image) == expected


PAYLOADS: list[tuple[int | None, int, set[str], set[str], set[str], set[str]]] = [
    (3, 3, {"a"}, {"a", "b"}, set(), {"a"}),  # current: the diff only
    (2, 3, {"a"}, {"a", "b"}, set(), {"a", "b"}),  # behind: everything
    (None, 3, {"a"}, {"b"}, set(), {"a", "b"}),  # unknown (new, or started before us)
    (None, 0, set(), set(), {"x", "y"}, {"x", "y"}),  # initial_sync's whole tree
    (3, 3, set(), {"b"}, {"x"}, set()),  # current and nothing new
]


@pytest.mark.parametrize(("cgen", "gen", "diff", "record", "extra", "expected"), PAYLOADS)
def test_payload(
    cgen: int | None,
    gen: int,
    diff: set[str],
    record: set[str],
    extra: set[str],
    expected: set[str],
) -> None:
    assert (
        payload(cgen, gen, dict.fromkeys(diff, "d"), dict.fromkeys(record, "d"), extra) == expected
    )


def test_record_generations_follow_what_reached_which_container() -> None:
    rec = SyncRecord()
    rec.applied({"a": "1"}, reached=["c1", "c2"], alive=["c1", "c2"])
    assert rec.gen == 1 and rec.containers == {"c1": 1, "c2": 1}
    rec.applied({"a": "2"}, reached=["c1"], alive=["c1", "c2"])  # c2's copy failed
    assert rec.containers == {"c1": 2, "c2": 1} and rec.files == {"a": "2"}
    rec.applied({}, reached=["c3"], alive=["c1", "c3"])  # c2 is gone, c3 caught up
    assert rec.gen == 2 and rec.containers == {"c1": 2, "c3": 2}
    rec.rebuilt(covered=["a"])
    assert rec.files == {} and rec.containers == {} and rec.gen == 3


# --- rule hits and container paths ---------------------------------------------------------
def mapper_of(rules: list[dict[str, Any]], dockerignore: str = "") -> PathMapper:
    project = parse_project(
        {
            "name": "p",
            "working_dir": "/ws",
            "services": {"web": {"build": {"context": "/ws/web"}, "develop": {"watch": rules}}},
        }
    )
    return PathMapper(project, {"web": DockerIgnore.parse(dockerignore)}, IgnoreList([]), "/ws")


HITS: list[tuple[list[dict[str, Any]], str, str, set[tuple[str, int]]]] = [
    ([SYNC], "", "/ws/web/www/a.html", {("web", 0)}),
    ([SYNC], "", "/ws/web/other.txt", set()),
    ([SYNC, REB], "", "/ws/web/Dockerfile", {("web", 1), ("web", CONTEXT)}),
    ([SYNC, {**SYNC, "target": "/b"}], "", "/ws/web/www/a", {("web", 0), ("web", 1)}),
    ([{**SYNC, "include": ["*.html"]}], "", "/ws/web/www/a.html", {("web", 0)}),
    ([{**SYNC, "include": ["*.html"]}], "", "/ws/web/www/a.css", set()),
    ([{**SYNC, "ignore": ["*.map"]}], "", "/ws/web/www/a.map", set()),
    ([SYNC], "www/*.tmp", "/ws/web/www/x.tmp", set()),  # the .dockerignore applies
    ([SYNC], "", "/ws/web/www/.a.swp", set()),  # editor droppings never count
]


@pytest.mark.parametrize(("rules", "dockerignore", "path", "expected"), HITS)
def test_rule_hits(
    rules: list[dict[str, Any]], dockerignore: str, path: str, expected: set[tuple[str, int]]
) -> None:
    mapper = PathMapper(
        mapper_of(rules).project,
        {"web": DockerIgnore.parse(dockerignore)},
        IgnoreList(["*.swp"]),
        "/ws",
    )
    assert mapper.hits_for(path) == expected


def test_container_paths_and_build_context() -> None:
    mapper = mapper_of(
        [SYNC, {"action": "sync", "path": "./web/app.conf", "target": "/etc/app.conf"}],
        dockerignore="www/private",
    )
    assert mapper.container_path("web", 0, "/ws/web/www/a/b.html") == "/www/a/b.html"
    assert mapper.container_path("web", 1, "/ws/web/app.conf") == "/etc/app.conf"
    assert mapper.container_path("web", 5, "/ws/web/www/a") is None
    assert mapper.in_context("web", "/ws/web/www/a.html")
    assert not mapper.in_context("web", "/ws/web/www/private")
    assert not mapper.in_context("web", "/ws/elsewhere/a")


def test_bind_mounted_paths_are_known() -> None:
    spec = parse_project(
        {
            "name": "p",
            "working_dir": "/ws",
            "services": {
                "web": {
                    "image": "x",
                    "volumes": [
                        {"type": "bind", "source": "/ws/web/conf", "target": "/etc/web"},
                        {"type": "volume", "source": "data", "target": "/data"},
                    ],
                }
            },
        }
    ).services["web"]
    assert spec.bind_sources == ("/ws/web/conf",)
    assert spec.bind_mounted("/ws/web/conf/a.ini") and spec.bind_mounted("/ws/web/conf")
    assert not spec.bind_mounted("/ws/web/config") and not spec.bind_mounted("/data/x")
