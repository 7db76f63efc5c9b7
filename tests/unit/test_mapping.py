"""PathMapper: absolute paths -> services, on plain data (fake paths, never the disk)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from sidecar.core.ignore import DEFAULT_IGNORES, DockerIgnore, IgnoreList
from sidecar.core.mapping import PathMapper
from sidecar.core.model import Project, ServiceSpec, WatchRule, parse_project

WS = "/ws"
COMPOSE = "/ws/compose.yaml"


def svc(
    name: str,
    context: str | None = None,
    dockerfile: str | None = None,
    watch: tuple[WatchRule, ...] = (),
    inline: bool = False,
) -> ServiceSpec:
    """A built service; the Dockerfile defaults to `<context>/Dockerfile` unless inline."""
    if context is not None and dockerfile is None and not inline:
        dockerfile = context + "/Dockerfile"
    return ServiceSpec(name=name, context=context, dockerfile=dockerfile, watch=watch)


def make_mapper(
    services: list[ServiceSpec],
    dockerignores: Mapping[str, str] | None = None,
    ignores: tuple[str, ...] = DEFAULT_IGNORES,
    compose_files: tuple[str, ...] = (COMPOSE,),
    workspace: str = WS,
) -> PathMapper:
    project = Project(
        name="demo",
        working_dir=WS,
        compose_files=compose_files,
        services={s.name: s for s in services},
    )
    parsed = {ctx: DockerIgnore.parse(text) for ctx, text in (dockerignores or {}).items()}
    return PathMapper(project, parsed, IgnoreList(ignores), workspace)


FRONT_WATCH = (
    WatchRule("/ws/front/src", "rebuild", ignore=("*.test.js", "fixtures/")),
    WatchRule("/ws/shared", "rebuild"),
)


def base_mapper() -> PathMapper:
    return make_mapper(
        [
            svc("web", "/ws/web"),
            svc("app", "/ws/app"),
            svc("admin", "/ws/app/admin"),
            svc("api", "/ws/backend", "/ws/backend/Dockerfile.api"),
            svc("worker", "/ws/backend", "/ws/backend/Dockerfile.worker"),
            svc("site", "/ws/site", "/ws/docker/site.Dockerfile"),
            svc("lib", "/ws/lib"),
            svc("inline", "/ws/inline", inline=True),
            svc("front", "/ws/front", watch=FRONT_WATCH),
            ServiceSpec(name="db", image="postgres:16"),
        ],
        dockerignores={
            "/ws/web": "*.log\ncache\n",
            "/ws/site": "docs\n!docs/keep.md\n",
            "/ws/lib": "Dockerfile\n.dockerignore\nvendor\n",
            "/ws/front": "src/generated\n",
        },
    )


SERVICES_FOR_CASES: list[tuple[str, set[str]]] = [
    # a path in a context maps to that service
    ("/ws/web/index.html", {"web"}),
    ("/ws/web/src/deep/app.js", {"web"}),
    ("/ws/web/Dockerfile", {"web"}),
    ("/ws/web/sub/../index.html", {"web"}),
    ("/ws/web/.dockerignore", {"web"}),
    # nested contexts: a path under the inner one belongs to both
    ("/ws/app/main.py", {"app"}),
    ("/ws/app/admin/views.py", {"app", "admin"}),
    # shared context
    ("/ws/backend/main.go", {"api", "worker"}),
    ("/ws/backend/Dockerfile.api", {"api", "worker"}),
    # outside every context
    ("/ws/docs/readme.md", set()),
    ("/ws/compose.yaml", set()),
    ("/elsewhere/file.txt", set()),
    ("/ws/webapp/index.html", set()),  # a sibling sharing the prefix is not inside
    ("/ws", set()),
    # dockerignored
    ("/ws/web/debug.log", set()),
    ("/ws/web/cache", set()),
    ("/ws/web/cache/a/b.bin", set()),
    ("/ws/web/logs/debug.log", {"web"}),  # `*.log` is anchored at the context root
    ("/ws/site/docs/guide.md", set()),
    ("/ws/site/docs/keep.md", {"site"}),
    ("/ws/lib/vendor/pkg/x.go", set()),
    # sidecar-ignored
    ("/ws/web/node_modules/x.js", set()),
    ("/ws/web/node_modules/.bin/tool", set()),
    ("/ws/web/.git/HEAD", set()),
    ("/ws/.git/index", set()),
    ("/ws/web/.index.html.swp", set()),
    ("/ws/web/index.html~", set()),
    ("/ws/web/4913", set()),
    ("/ws/app/admin/__pycache__/views.cpython-311.pyc", set()),
    # the Dockerfile counts even outside its context, or dockerignored inside it
    ("/ws/docker/site.Dockerfile", {"site"}),
    ("/ws/docker/other.Dockerfile", set()),
    ("/ws/lib/Dockerfile", {"lib"}),
    # the .dockerignore itself always counts for its context
    ("/ws/lib/.dockerignore", {"lib"}),
    # image-only services are never affected
    ("/ws/db/init.sql", set()),
    # dockerfile_inline: the context still counts, there is no Dockerfile file
    ("/ws/inline/app.py", {"inline"}),
    ("/ws/inline/Dockerfile", {"inline"}),
    # develop.watch rules replace the context as watch roots...
    ("/ws/front/src/app.js", {"front"}),
    ("/ws/front/README.md", set()),
    ("/ws/front/package.json", set()),
    ("/ws/shared/util.js", {"front"}),
    # ...but the Dockerfile still counts
    ("/ws/front/Dockerfile", {"front"}),
    # ...their `ignore` patterns apply (relative to the rule's path)
    ("/ws/front/src/app.test.js", set()),
    ("/ws/front/src/fixtures/data.json", set()),
    # ...and so does the context's .dockerignore
    ("/ws/front/src/generated/api.js", set()),
]


@pytest.mark.parametrize(("path", "expected"), SERVICES_FOR_CASES)
def test_services_for(path: str, expected: set[str]) -> None:
    assert base_mapper().services_for(path) == expected


@pytest.mark.parametrize(("path", "expected"), SERVICES_FOR_CASES)
def test_includes_agrees_with_services_for(path: str, expected: set[str]) -> None:
    mapper = base_mapper()
    for name in ("web", "app", "admin", "api", "worker", "site", "front", "db"):
        assert mapper.includes(name, path) is (name in expected)


def test_map_paths_groups_by_service() -> None:
    paths = [
        "/ws/web/index.html",
        "/ws/web/node_modules/x.js",
        "/ws/app/admin/views.py",
        "/ws/backend/main.go",
        "/ws/docs/readme.md",
    ]
    assert base_mapper().map_paths(paths) == {
        "web": {"/ws/web/index.html"},
        "app": {"/ws/app/admin/views.py"},
        "admin": {"/ws/app/admin/views.py"},
        "api": {"/ws/backend/main.go"},
        "worker": {"/ws/backend/main.go"},
    }


def test_map_paths_empty() -> None:
    assert base_mapper().map_paths([]) == {}
    assert base_mapper().map_paths(["/ws/web/.git/HEAD", "/nowhere"]) == {}


def test_outer_context_dockerignoring_the_inner_one() -> None:
    mapper = make_mapper(
        [svc("app", "/ws/app"), svc("admin", "/ws/app/admin")],
        dockerignores={"/ws/app": "admin\n"},
    )
    assert mapper.services_for("/ws/app/admin/views.py") == {"admin"}
    assert mapper.services_for("/ws/app/main.py") == {"app"}
    assert not mapper.prunes_dir("/ws/app/admin/templates")


@pytest.mark.parametrize("dockerfile", ["/ws/docker/admin.Dockerfile", None])
def test_inner_context_is_not_pruned_by_outer_dockerignore(dockerfile: str | None) -> None:
    inner = svc("admin", "/ws/app/admin", dockerfile, inline=dockerfile is None)
    mapper = make_mapper([svc("app", "/ws/app"), inner], dockerignores={"/ws/app": "admin\n"})
    assert mapper.services_for("/ws/app/admin/views.py") == {"admin"}
    assert not mapper.prunes_dir("/ws/app/admin")


def test_inner_context_holding_its_dockerfile_is_not_pruned() -> None:
    mapper = make_mapper(
        [svc("app", "/ws/app"), svc("admin", "/ws/app/admin")],
        dockerignores={"/ws/app": "admin\n"},
    )
    assert not mapper.prunes_dir("/ws/app/admin")


def test_watch_root_is_not_pruned_by_other_services_dockerignore() -> None:
    mapper = make_mapper(
        [
            svc("app", "/ws/app"),
            svc("docs", "/ws/docs", watch=(WatchRule("/ws/app/manual", "rebuild"),)),
        ],
        dockerignores={"/ws/app": "manual\n"},
    )
    assert mapper.services_for("/ws/app/manual/index.md") == {"docs"}
    assert not mapper.prunes_dir("/ws/app/manual")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # compose files (normalised), .env and .dockerignore anywhere
        ("/ws/compose.yaml", True),
        ("/ws/sub/../compose.yaml", True),
        ("/ws/.env", True),
        ("/ws/web/.env", True),
        ("/ws/web/.dockerignore", True),
        ("/ws/lib/.dockerignore", True),
        # other YAML outside every build: maybe an `include`d or `extends` file
        ("/ws/compose.override.yaml", True),
        ("/ws/docs/mkdocs.yml", True),
        # YAML that is a service's source is a source, not a project file
        ("/ws/web/config.yml", False),
        ("/ws/backend/settings.yaml", False),
        # ordinary files
        ("/ws/web/index.html", False),
        ("/ws/README.md", False),
        ("/ws/docker/site.Dockerfile", False),
        # sidecar-ignored places never count
        ("/ws/web/node_modules/pkg/.env", False),
        ("/ws/.git/compose.yaml", False),
        ("/ws/web/node_modules/pkg/config.yaml", False),
    ],
)
def test_is_project_file(path: str, expected: bool) -> None:
    assert base_mapper().is_project_file(path) is expected


def test_compose_file_outside_workspace_is_a_project_file() -> None:
    mapper = make_mapper([svc("web", "/ws/web")], compose_files=("/etc/stack/compose.yaml",))
    assert mapper.is_project_file("/etc/stack/compose.yaml")
    assert not mapper.is_project_file("/etc/stack/other.txt")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # sidecar-ignored directories
        ("/ws/web/node_modules", True),
        ("/ws/web/node_modules/pkg", True),
        ("/ws/node_modules", True),
        ("/ws/.git", True),
        ("/ws/web/.git", True),
        ("/ws/app/__pycache__", True),
        # fully dockerignored directories
        ("/ws/web/cache", True),
        ("/ws/web/cache/sub", True),
        ("/ws/lib/vendor", True),
        # a rule `ignore` directory under a develop.watch path
        ("/ws/front/src/fixtures", True),
        # .dockerignore with `!` exceptions: something below may still count
        ("/ws/site/docs", False),
        # ordinary source directories
        ("/ws/web/src", False),
        ("/ws/web", False),
        ("/ws/app/admin", False),
        ("/ws/backend/cmd", False),
        # outside every root: compose files could live anywhere, keep watching
        ("/ws/docs", False),
        ("/ws/docker", False),
        ("/ws", False),
        # a logs directory is not matched by `*.log`
        ("/ws/web/logs", False),
    ],
)
def test_prunes_dir(path: str, expected: bool) -> None:
    assert base_mapper().prunes_dir(path) is expected


def test_prunes_dir_keeps_a_dockerignored_dir_holding_the_dockerfile() -> None:
    mapper = make_mapper(
        [svc("web", "/ws/web", "/ws/web/docker/Dockerfile")],
        dockerignores={"/ws/web": "docker\n"},
    )
    assert mapper.services_for("/ws/web/docker/Dockerfile") == {"web"}
    assert mapper.services_for("/ws/web/docker/notes.txt") == set()
    assert not mapper.prunes_dir("/ws/web/docker")


def test_prunes_dir_shared_context() -> None:
    mapper = make_mapper(
        [svc("a", "/ws/shared", "/ws/a.Dockerfile"), svc("b", "/ws/shared", "/ws/b.Dockerfile")],
        dockerignores={"/ws/shared": "tmp\n"},
    )
    assert mapper.prunes_dir("/ws/shared/tmp")
    assert not mapper.prunes_dir("/ws/shared/src")


def test_nested_context_dir_not_pruned_when_inner_service_needs_it() -> None:
    # the outer context ignores `admin/tmp`, the inner one does not
    mapper = make_mapper(
        [svc("app", "/ws/app"), svc("admin", "/ws/app/admin")],
        dockerignores={"/ws/app": "admin/tmp\n"},
    )
    assert mapper.services_for("/ws/app/admin/tmp/x") == {"admin"}
    assert not mapper.prunes_dir("/ws/app/admin/tmp")


def test_extra_ignore_patterns_apply() -> None:
    mapper = make_mapper([svc("web", "/ws/web")], ignores=(*DEFAULT_IGNORES, "*.tmp", "/web/out/"))
    assert mapper.services_for("/ws/web/a/b.tmp") == set()
    assert mapper.services_for("/ws/web/out/bundle.js") == set()
    assert mapper.prunes_dir("/ws/web/out")
    assert mapper.services_for("/ws/web/src/out/bundle.js") == {"web"}


def test_without_default_ignores_node_modules_counts() -> None:
    mapper = make_mapper([svc("web", "/ws/web")], ignores=())
    assert mapper.services_for("/ws/web/node_modules/x.js") == {"web"}
    assert not mapper.prunes_dir("/ws/web/node_modules")


@pytest.mark.parametrize(
    ("services", "compose_files", "expected"),
    [
        ([svc("web", "/ws/web")], (COMPOSE,), ["/ws"]),
        ([svc("web", "/ws/web"), svc("lib", "/shared/lib")], (COMPOSE,), ["/ws", "/shared/lib"]),
        (
            [svc("a", "/ext"), svc("b", "/ext/sub"), svc("c", "/ext2")],
            (COMPOSE,),
            ["/ws", "/ext", "/ext2"],
        ),
        ([svc("web", "/ws/web")], ("/etc/stack/compose.yaml",), ["/ws", "/etc/stack"]),
        (
            [svc("f", "/ws/f", watch=(WatchRule("/opt/assets", "rebuild"),))],
            (COMPOSE,),
            ["/ws", "/opt/assets"],
        ),
        ([ServiceSpec(name="db", image="redis")], (), ["/ws"]),
    ],
)
def test_watch_roots(
    services: list[ServiceSpec], compose_files: tuple[str, ...], expected: list[str]
) -> None:
    assert make_mapper(services, compose_files=compose_files).watch_roots == expected


def test_watch_roots_strips_trailing_slash_of_workspace() -> None:
    mapper = make_mapper([svc("web", "/ws/web")], workspace="/ws/")
    assert mapper.watch_roots == ["/ws"]
    assert mapper.rel("/ws/web/a.js") == "web/a.js"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/ws/web/a.js", "web/a.js"),
        ("/ws/compose.yaml", "compose.yaml"),
        ("/shared/lib/x.c", "/shared/lib/x.c"),
        ("/wsx/a", "/wsx/a"),
    ],
)
def test_rel_and_abs_round_trip(path: str, expected: str) -> None:
    mapper = base_mapper()
    assert mapper.rel(path) == expected
    assert mapper.abs(mapper.rel(path)) == path


def test_service_roots_and_dockerfiles() -> None:
    mapper = base_mapper()
    assert mapper.service_roots("web") == ["/ws/web"]
    assert mapper.service_roots("front") == ["/ws/front/src", "/ws/shared"]
    assert mapper.service_roots("db") == []
    assert mapper.dockerfiles_of("site") == ["/ws/docker/site.Dockerfile"]
    assert mapper.dockerfiles_of("inline") == []
    assert mapper.dockerfiles_of("db") == []


def test_shared_dockerfile_maps_to_every_service_using_it() -> None:
    mapper = make_mapper(
        [svc("a", "/ws/a", "/ws/Dockerfile"), svc("b", "/ws/b", "/ws/Dockerfile")],
    )
    assert mapper.services_for("/ws/Dockerfile") == {"a", "b"}


def test_rule_ignore_is_relative_to_the_rule_path() -> None:
    mapper = make_mapper(
        [svc("f", "/ws/f", watch=(WatchRule("/ws/f/src", "rebuild", ignore=("/tests/",)),))]
    )
    assert mapper.services_for("/ws/f/src/tests/a_test.py") == set()
    assert mapper.services_for("/ws/f/src/app/tests/b_test.py") == {"f"}


def test_rule_ignore_follows_dockerignore_syntax_like_compose() -> None:
    mapper = make_mapper(
        [svc("f", "/ws/f", watch=(WatchRule("/ws/f/src", "rebuild", ignore=("*.md",)),))]
    )
    assert mapper.services_for("/ws/f/src/README.md") == set()
    assert mapper.services_for("/ws/f/src/docs/guide.md") == {"f"}


# A build context outside the workspace (compose resolves `context: ../lib` to an absolute path).
OUTSIDE = [svc("web", "/ws/web"), svc("lib", "/shared/lib")]


def test_context_outside_workspace_maps_its_sources() -> None:
    mapper = make_mapper(OUTSIDE)
    assert mapper.services_for("/shared/lib/src/lib.c") == {"lib"}
    assert mapper.rel("/shared/lib/src/lib.c") == "/shared/lib/src/lib.c"


@pytest.mark.parametrize(
    "path", ["/shared/lib/.git/HEAD", "/shared/lib/node_modules/x.js", "/shared/lib/.a.c.swp"]
)
def test_default_ignores_apply_outside_the_workspace(path: str) -> None:
    assert make_mapper(OUTSIDE).services_for(path) == set()


def test_ignored_dirs_outside_the_workspace_are_pruned() -> None:
    assert make_mapper(OUTSIDE).prunes_dir("/shared/lib/node_modules")


# ---- from compose's own output through the model to the mapper ----------------------------


def compose_config(build: dict[str, str]) -> dict[str, object]:
    """What `docker compose config` prints: context absolute, dockerfile as written."""
    return {"name": "demo", "services": {"web": {"build": build, "image": "demo-web"}}}


def test_model_to_mapper_dockerfile_in_context() -> None:
    project = parse_project(compose_config({"context": "/ws/web"}), (COMPOSE,))
    mapper = PathMapper(project, {}, IgnoreList(DEFAULT_IGNORES), WS)
    assert mapper.services_for("/ws/web/Dockerfile") == {"web"}
    assert mapper.services_for("/ws/web/app.py") == {"web"}


def test_model_to_mapper_dockerfile_outside_context() -> None:
    project = parse_project(
        compose_config({"context": "/ws/web", "dockerfile": "../docker/web.Dockerfile"}),
        (COMPOSE,),
    )
    mapper = PathMapper(project, {}, IgnoreList(DEFAULT_IGNORES), WS)
    assert mapper.services_for("/ws/docker/web.Dockerfile") == {"web"}
