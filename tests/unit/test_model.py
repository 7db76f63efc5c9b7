"""parse_project on dicts shaped like `docker compose config` output."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sidecar.core.model import Project, WatchRule, parse_project

COMPOSE = "/ws/compose.yaml"


def project_of(services: dict[str, Any], working_dir: str | None = "/ws") -> Project:
    config: dict[str, Any] = {"name": "demo", "services": services}
    if working_dir is not None:
        config["working_dir"] = working_dir
    return parse_project(config, (COMPOSE,))


def one(service: dict[str, Any]) -> tuple[str | None, str | None]:
    spec = project_of({"s": service}).services["s"]
    return spec.context, spec.dockerfile


BUILD_CASES: list[tuple[Any, str | None, str | None]] = [
    # build as a string
    ("./web", "/ws/web", "/ws/web/Dockerfile"),
    ("web", "/ws/web", "/ws/web/Dockerfile"),
    (".", "/ws", "/ws/Dockerfile"),
    ("/abs/web", "/abs/web", "/abs/web/Dockerfile"),
    # build as a mapping (what compose config prints)
    ({"context": "/ws/web"}, "/ws/web", "/ws/web/Dockerfile"),
    ({"context": "/ws/web", "dockerfile": "Dockerfile"}, "/ws/web", "/ws/web/Dockerfile"),
    ({"context": "web", "dockerfile": "Dockerfile.dev"}, "/ws/web", "/ws/web/Dockerfile.dev"),
    (
        {"context": "/ws/web", "dockerfile": "docker/prod.Dockerfile"},
        "/ws/web",
        "/ws/web/docker/prod.Dockerfile",
    ),
    (
        {"context": "/ws/web", "dockerfile": "/ws/docker/web.Dockerfile"},
        "/ws/web",
        "/ws/docker/web.Dockerfile",
    ),
    # dockerfile_inline: a context to watch, no Dockerfile on disk
    ({"context": "/ws/web", "dockerfile_inline": "FROM scratch\n"}, "/ws/web", None),
    ({"context": "/ws/web", "dockerfile_inline": ""}, "/ws/web", None),
    # remote contexts: nothing local to watch
    ({"context": "https://github.com/docker/welcome.git#main"}, None, None),
    ({"context": "http://example.com/ctx.tar.gz"}, None, None),
    ({"context": "git://example.com/repo.git"}, None, None),
    ({"context": "ssh://git@example.com/repo.git"}, None, None),
    ("https://github.com/docker/welcome.git", None, None),
    # no build at all
    (None, None, None),
    ({}, None, None),
]


@pytest.mark.parametrize(("build", "context", "dockerfile"), BUILD_CASES)
def test_build_section(build: Any, context: str | None, dockerfile: str | None) -> None:
    service: dict[str, Any] = {"image": "demo/s"}
    if build is not None:
        service["build"] = build
    assert one(service) == (context, dockerfile)


@pytest.mark.parametrize("context", ["git@github.com:docker/x.git", "github.com/docker/x"])
def test_ssh_and_github_shorthand_contexts_are_remote(context: str) -> None:
    assert one({"build": {"context": context, "dockerfile": "Dockerfile"}}) == (None, None)


def test_dockerfile_outside_context_is_normalised() -> None:
    got = one({"build": {"context": "/ws/web", "dockerfile": "../docker/web.Dockerfile"}})
    assert got == ("/ws/web", "/ws/docker/web.Dockerfile")


def test_image_only_service() -> None:
    spec = project_of({"db": {"image": "postgres:16"}}).services["db"]
    assert spec.context is None
    assert spec.dockerfile is None
    assert spec.image == "postgres:16"
    assert not spec.built
    assert spec.watch_roots == ()


def test_built_services_are_the_ones_with_a_local_context() -> None:
    project = project_of(
        {
            "web": {"build": {"context": "/ws/web"}},
            "db": {"image": "postgres:16"},
            "remote": {"build": {"context": "https://example.com/r.git"}},
            "api": {"build": "./api", "image": "demo/api"},
        }
    )
    assert sorted(s.name for s in project.built_services()) == ["api", "web"]
    assert project.services["api"].image == "demo/api"
    assert project.services["web"].image is None


def test_project_fields() -> None:
    project = parse_project(
        {"name": "demo", "working_dir": "/ws", "services": {"b": {}, "a": {}}},
        (COMPOSE, "/ws/compose.override.yaml"),
    )
    assert project.name == "demo"
    assert project.working_dir == "/ws"
    assert project.compose_files == (COMPOSE, "/ws/compose.override.yaml")
    assert set(project.services) == {"a", "b"}
    assert project.services["a"].name == "a"


def test_working_dir_defaults_to_the_first_compose_files_directory() -> None:
    # `docker compose config` output has no working_dir key
    project = parse_project(
        {"name": "demo", "services": {"web": {"build": "web"}}}, ("/proj/compose.yaml",)
    )
    assert project.working_dir == "/proj"
    assert project.services["web"].context == "/proj/web"


def test_empty_config() -> None:
    project = parse_project({})
    assert project.name == ""
    assert dict(project.services) == {}
    assert project.built_services() == []


def test_develop_watch_parsing() -> None:
    spec = project_of(
        {
            "web": {
                "build": {"context": "/ws/web"},
                "develop": {
                    "watch": [
                        {"path": "/ws/web/src", "action": "rebuild"},
                        {
                            "path": "./web/static",
                            "action": "sync",
                            "target": "/app/static",
                            "ignore": ["*.map", "tmp/"],
                        },
                        {"path": "/ws/shared", "action": "rebuild"},
                    ]
                },
            }
        }
    ).services["web"]
    assert spec.watch == (
        WatchRule("/ws/web/src", "rebuild"),
        WatchRule(
            "/ws/web/static", "sync", ignore=("*.map", "tmp/"), target="/app/static", index=1
        ),
        WatchRule("/ws/shared", "rebuild", index=2),
    )
    assert spec.watch_roots == ("/ws/web/src", "/ws/web/static", "/ws/shared")


@pytest.mark.parametrize("develop", [None, {}, {"watch": None}, {"watch": []}, "junk"])
def test_no_watch_rules_means_the_context_is_the_root(develop: Any) -> None:
    service: dict[str, Any] = {"build": {"context": "/ws/web"}}
    if develop is not None:
        service["develop"] = develop
    spec = project_of({"web": service}).services["web"]
    assert spec.watch == ()
    assert spec.watch_roots == ("/ws/web",)


def test_extensions_are_kept() -> None:
    service = {
        "build": {"context": "/ws/web"},
        "x-sidecar": {"port": 8080},
        "x-team": "frontend",
        "environment": {"A": "1"},
    }
    spec = project_of({"web": service}).services["web"]
    assert spec.extensions["x-sidecar"] == {"port": 8080}
    assert spec.extensions["x-team"] == "frontend"
    assert "environment" not in spec.extensions


def test_no_extensions() -> None:
    assert dict(project_of({"db": {"image": "redis"}}).services["db"].extensions) == {}


# ---- config_digest --------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "build": {"context": "/ws/web", "dockerfile": "Dockerfile", "args": {"A": "1", "B": "2"}},
    "image": "demo/web",
    "environment": {"DEBUG": "1", "PORT": "8000"},
    "ports": [{"target": 8000, "published": "8000", "protocol": "tcp"}],
    "command": ["python", "app.py"],
}


def digest(service: dict[str, Any]) -> str:
    return project_of({"web": service}).services["web"].config_digest


def reorder(obj: Any) -> Any:
    """The same data with every mapping's keys in reverse order."""
    if isinstance(obj, dict):
        return {k: reorder(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [reorder(v) for v in obj]
    return obj


def test_digest_is_stable_across_key_order() -> None:
    shuffled = reorder(BASE)
    assert list(shuffled) != list(BASE)
    assert digest(shuffled) == digest(BASE)
    assert digest(copy.deepcopy(BASE)) == digest(BASE)


def test_digest_is_a_nonempty_string() -> None:
    assert isinstance(digest(BASE), str)
    assert digest(BASE)


def _set(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(BASE)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("environment", "DEBUG"), "0"),
        (("environment", "NEW"), "x"),
        (("image",), "demo/web:2"),
        (("command",), ["python", "other.py"]),
        (("ports",), [{"target": 8001, "published": "8000", "protocol": "tcp"}]),
        (("build", "args", "A"), "9"),
        (("build", "context"), "/ws/web2"),
        (("volumes",), [{"type": "bind", "source": "/ws/data", "target": "/data"}]),
    ],
)
def test_digest_changes_with_the_definition(path: tuple[str, ...], value: Any) -> None:
    assert digest(_set(path, value)) != digest(BASE)


def test_digest_of_a_service_ignores_other_services() -> None:
    before = project_of({"web": BASE, "db": {"image": "postgres:15"}})
    after = project_of({"web": copy.deepcopy(BASE), "db": {"image": "postgres:16"}})
    assert before.services["web"].config_digest == after.services["web"].config_digest
    assert before.services["db"].config_digest != after.services["db"].config_digest


def test_list_order_matters_to_the_digest() -> None:
    # command arguments are ordered: swapping them is a different definition
    assert digest(_set(("command",), ["app.py", "python"])) != digest(BASE)
