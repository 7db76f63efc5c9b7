"""`.dockerignore` semantics (as moby/patternmatcher) and the sidecar's gitignore-style list."""

from __future__ import annotations

import pytest

from sidecar.core.ignore import DEFAULT_IGNORES, DockerIgnore, IgnoreList

# (pattern, path relative to the context, excluded by Docker?)
SINGLE_PATTERN_CASES: list[tuple[str, str, bool]] = [
    # plain names are anchored at the context root
    ("secret.txt", "secret.txt", True),
    ("secret.txt", "sub/secret.txt", False),
    ("secret.txt", "secret.txt.bak", False),
    # a pattern matching a directory excludes everything below it
    ("node_modules", "node_modules", True),
    ("node_modules", "node_modules/a/b.js", True),
    ("node_modules", "src/node_modules/x.js", False),
    ("build/", "build/out/app.o", True),
    ("./build", "build/app.o", True),
    ("a/b", "a/b/c/d", True),
    ("a/b", "a/bc", False),
    ("a/b", "a", False),
    # leading `/` is stripped: still relative to the context root
    ("/secret", "secret", True),
    ("/secret", "secret/key.pem", True),
    ("/secret", "sub/secret", False),
    ("//double", "double", True),
    # the pattern is cleaned like filepath.Clean
    ("dir/../other", "other", True),
    ("dir/../other", "dir/other", False),
    ("a//b/./c", "a/b/c", True),
    # `*` does not cross `/`
    ("*.log", "app.log", True),
    ("*.log", "logs/app.log", False),
    ("*/*.log", "logs/app.log", True),
    ("*/*.log", "a/b/app.log", False),
    ("src/*.js", "src/app.js", True),
    ("src/*.js", "src/lib/app.js", False),
    ("*", "anything", True),
    ("*", "dir/file", True),  # the parent `dir` matches
    ("tmp*", "tmpfile", True),
    ("tmp*", "tmp/x", True),
    ("tmp*", "a/tmp", False),
    # `**` crosses directories, including none
    ("**/*.log", "app.log", True),
    ("**/*.log", "a/b/c/app.log", True),
    ("**/*.log", "a/b/c/app.txt", False),
    ("**/tmp", "tmp", True),
    ("**/tmp", "a/b/tmp", True),
    ("**/tmp", "a/b/tmp/deep/file", True),
    ("**/tmp", "a/btmp", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/x/y/z/b", True),
    ("a/**/b", "a/xb", False),
    ("a/**/b", "c/a/x/b", False),
    ("docs/**", "docs/a", True),
    ("docs/**", "docs/a/b/c.md", True),
    ("docs/**", "docs", False),
    ("docs/**", "docsx/a", False),
    ("**", "a/b/c", True),
    ("**.go", "main.go", True),
    ("**.go", "cmd/tool/main.go", True),
    # `?` is one character, never `/`
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file10.txt", False),
    ("file?.txt", "file.txt", False),
    ("a?b", "a/b", False),
    ("a?b", "a-b", True),
    # character classes
    ("[abc].txt", "b.txt", True),
    ("[abc].txt", "d.txt", False),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[^a]x", "bx", True),
    ("[^a]x", "ax", False),
    ("v[0-9].[0-9]", "v1.2", True),
    ("v[0-9].[0-9]", "v1x2", False),
    # regex metacharacters are literal; `\` escapes a wildcard
    ("a.b", "a.b", True),
    ("a.b", "axb", False),
    ("a+b(c)|{d}$.txt", "a+b(c)|{d}$.txt", True),
    ("a+b(c)|{d}$.txt", "aab(c)|{d}$.txt", False),
    ("foo\\*", "foo*", True),
    ("foo\\*", "foobar", False),
    ("\\#notacomment", "#notacomment", True),
    # surrounding whitespace is trimmed
    ("   spaced.txt   ", "spaced.txt", True),
    ("\tspaced.txt", "spaced.txt", True),
]


@pytest.mark.parametrize(("pattern", "rel", "expected"), SINGLE_PATTERN_CASES)
def test_single_pattern(pattern: str, rel: str, expected: bool) -> None:
    assert DockerIgnore.parse(pattern + "\n").excludes(rel) is expected


# (whole .dockerignore, path, excluded?)
EXCEPTION_CASES: list[tuple[str, str, bool]] = [
    ("*.md\n!README.md\n", "README.md", False),
    ("*.md\n!README.md\n", "CHANGES.md", True),
    # last match wins: an exception listed first is overridden by a later pattern
    ("!README.md\n*.md\n", "README.md", True),
    ("*.md\n!README.md\nREADME.md\n", "README.md", True),
    # a file re-included below an excluded directory
    ("logs\n!logs/keep.log\n", "logs/keep.log", False),
    ("logs\n!logs/keep.log\n", "logs/other.log", True),
    ("logs\n!logs/keep.log\n", "logs", True),
    # exclude, re-include a subtree, exclude again inside it
    ("build\n!build/keep\nbuild/keep/tmp\n", "build/out.o", True),
    ("build\n!build/keep\nbuild/keep/x.o", "build/keep/x.o", True),
    ("build\n!build/keep\nbuild/keep/tmp\n", "build/keep/src.c", False),
    ("build\n!build/keep\nbuild/keep/tmp\n", "build/keep/tmp/junk", True),
    # `**` exclusions and exceptions
    ("**/*.pyc\n!keep/**\n", "pkg/mod.pyc", True),
    ("**/*.pyc\n!keep/**\n", "keep/mod.pyc", False),
    # an exception alone excludes nothing
    ("!foo\n", "foo", False),
    ("!foo\n", "bar", False),
    # `!` then whitespace and a leading `/`
    ("secrets\n! /secrets/public.pem\n", "secrets/public.pem", False),
    ("secrets\n! /secrets/public.pem\n", "secrets/private.pem", True),
    # everything except a few
    ("*\n!src\n!Dockerfile\n", "src/main.go", False),
    ("*\n!src\n!Dockerfile\n", "Dockerfile", False),
    ("*\n!src\n!Dockerfile\n", "README.md", True),
    ("*\n!src\n!Dockerfile\n", "docs/a.md", True),
]


@pytest.mark.parametrize(("text", "rel", "expected"), EXCEPTION_CASES)
def test_exceptions_last_match_wins(text: str, rel: str, expected: bool) -> None:
    assert DockerIgnore.parse(text).excludes(rel) is expected


def test_comments_and_blank_lines_are_skipped() -> None:
    text = "# a comment\n\n   \n#secret.txt\nbuild\n\n# trailing comment\n"
    ignore = DockerIgnore.parse(text)
    assert [p.text for p in ignore.patterns] == ["build"]
    assert ignore.excludes("build/x")
    assert not ignore.excludes("#secret.txt")
    assert not ignore.excludes("# a comment")


def test_crlf_line_endings() -> None:
    ignore = DockerIgnore.parse("node_modules\r\n*.log\r\n!keep.log\r\n")
    assert ignore.excludes("node_modules/x")
    assert ignore.excludes("a.log")
    assert not ignore.excludes("keep.log")


def test_lone_dot_pattern_is_dropped() -> None:
    ignore = DockerIgnore.parse(".\n./\n")
    assert ignore.patterns == ()
    assert not ignore.excludes("anything")


@pytest.mark.parametrize("text", ["", "\n\n", "# only comments\n# here\n"])
def test_empty_dockerignore_excludes_nothing(text: str) -> None:
    ignore = DockerIgnore.parse(text)
    assert not ignore.has_exceptions
    for rel in ("Dockerfile", "a/b/c", ".git/HEAD", "node_modules/x"):
        assert not ignore.excludes(rel)


def test_default_dockerignore_excludes_nothing() -> None:
    assert not DockerIgnore().excludes("anything/at/all")
    assert not DockerIgnore().excludes_dir_entirely("anything")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\nb\n", False),
        ("a\n!a/b\n", True),
        ("!only\n", True),
        ("# !not-an-exception\n", False),
        ("\\!literal\n", False),
    ],
)
def test_has_exceptions(text: str, expected: bool) -> None:
    assert DockerIgnore.parse(text).has_exceptions is expected


# (.dockerignore, directory, nothing below it can be in the context?)
DIR_CASES: list[tuple[str, str, bool]] = [
    ("node_modules\n", "node_modules", True),
    ("node_modules\n", "node_modules/sub", True),
    ("node_modules\n", "src", False),
    ("**/cache\n", "a/b/cache", True),
    # the directory itself is not matched, only what is inside it
    ("build/*\n", "build", False),
    ("*.log\n", "logs", False),
    # any exception makes the answer "maybe": files below might be re-included
    ("node_modules\n!node_modules/keep.js\n", "node_modules", False),
    ("node_modules\n!other\n", "node_modules", False),
    ("", "anything", False),
]


@pytest.mark.parametrize(("text", "rel", "expected"), DIR_CASES)
def test_excludes_dir_entirely(text: str, rel: str, expected: bool) -> None:
    assert DockerIgnore.parse(text).excludes_dir_entirely(rel) is expected


# Places where the implementation departs from moby/patternmatcher + ignorefile.ReadAll.
@pytest.mark.parametrize(
    ("rel", "expected"),
    [("ax", True), ("bx", False)],
)
def test_bang_inside_class_is_literal_like_docker(rel: str, expected: bool) -> None:
    assert DockerIgnore.parse("[!a]x\n").excludes(rel) is expected


def test_indented_hash_is_a_pattern_not_a_comment() -> None:
    assert DockerIgnore.parse("  #keep\n").excludes("#keep")


def test_utf8_bom_is_ignored() -> None:
    assert DockerIgnore.parse("\ufeffsecret.txt\n").excludes("secret.txt")


# ---- the sidecar's own ignore list (gitignore semantics) ----------------------------------

DEFAULT_FILE_CASES: list[tuple[str, bool]] = [
    (".git/HEAD", True),
    ("web/.git/HEAD", True),
    ("web/.git/objects/ab/cdef", True),
    ("web/node_modules/x.js", True),
    ("node_modules/.bin/tool", True),
    ("web/a/b/node_modules/pkg/index.js", True),
    ("web/__pycache__/mod.cpython-311.pyc", True),
    ("web/.index.html.swp", True),
    ("web/.index.html.swx", True),
    ("web/index.html~", True),
    ("web/4913", True),
    ("4913", True),
    ("web/.#index.html", True),
    ("web/.DS_Store", True),
    ("web/index.html___jb_tmp___", True),
    ("web/index.html___jb_old___", True),
    ("web/.idea/workspace.xml", True),
    ("web/.vscode/settings.json", True),
    ("web/.venv/bin/python", True),
    # ordinary sources
    ("web/index.html", False),
    ("web/src/app.py", False),
    ("Dockerfile", False),
    ("compose.yaml", False),
    ("web/.dockerignore", False),
    ("web/.env", False),
    ("web/.gitignore", False),
    # near misses
    ("web/node_modules_backup/x.js", False),
    ("web/my.git/HEAD", False),
    ("web/49130", False),
    ("web/14913", False),
    ("web/file.swpx", False),
    ("web/~file", False),
    ("web/index#", False),
]


@pytest.mark.parametrize(("rel", "expected"), DEFAULT_FILE_CASES)
def test_default_ignores_files(rel: str, expected: bool) -> None:
    assert IgnoreList(DEFAULT_IGNORES).ignores_file(rel) is expected


@pytest.mark.parametrize("rel", ["#index.html#", "web/#index.html#"])
def test_default_ignores_emacs_autosave_files(rel: str) -> None:
    assert IgnoreList(DEFAULT_IGNORES).ignores_file(rel)


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        (".git", True),
        ("web/.git", True),
        ("web/node_modules", True),
        ("web/node_modules/", True),
        ("web/node_modules/pkg", True),
        ("svc/__pycache__", True),
        (".hg", True),
        (".svn", True),
        ("web", False),
        ("web/src", False),
        ("web/gitstuff", False),
    ],
)
def test_default_ignores_dirs(rel: str, expected: bool) -> None:
    assert IgnoreList(DEFAULT_IGNORES).ignores_dir(rel) is expected


def test_dir_only_pattern_does_not_match_a_file_of_that_name() -> None:
    ignores = IgnoreList(DEFAULT_IGNORES)
    # a *file* named node_modules is not the node_modules/ directory
    assert not ignores.ignores_file("web/node_modules")
    assert ignores.ignores_dir("web/node_modules")


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        # gitignore: a slash-less pattern matches at any depth
        ("a.log", True),
        ("deep/er/a.log", True),
        # negation
        ("keep.log", False),
        ("sub/keep.log", False),
        # a leading slash anchors to the workspace root
        ("build/out.o", True),
        ("web/build/out.o", False),
        # a pattern with a middle slash is anchored too
        ("docs/generated/x.html", True),
        ("web/docs/generated/x.html", False),
        ("web/app.py", False),
    ],
)
def test_custom_ignore_list_gitignore_semantics(rel: str, expected: bool) -> None:
    ignores = IgnoreList(["*.log", "!keep.log", "/build/", "docs/generated"])
    assert ignores.ignores_file(rel) is expected


def test_empty_ignore_list_ignores_nothing() -> None:
    ignores = IgnoreList([])
    assert not ignores.ignores_file(".git/HEAD")
    assert not ignores.ignores_dir("node_modules")
    assert "0 patterns" in repr(ignores)


def test_default_ignores_cover_the_documented_basics() -> None:
    for pattern in (".git/", "node_modules/", "*.swp", "*~", "4913"):
        assert pattern in DEFAULT_IGNORES
