"""Content digests on real small files in tmp_path."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

from sidecar.adapters.hashing import digest_file, digest_many, scan
from sidecar.core.ignore import DEFAULT_IGNORES, DockerIgnore, IgnoreList
from sidecar.core.mapping import PathMapper
from sidecar.core.model import Project, ServiceSpec


def write(path: Path, data: bytes, mode: int = 0o644) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


def test_same_bytes_same_digest(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", b"hello\n")
    b = write(tmp_path / "sub" / "b.txt", b"hello\n")
    assert digest_file(a) is not None
    assert digest_file(a) == digest_file(b)


def test_touch_keeps_the_digest(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", b"hello\n")
    before = digest_file(a)
    os.utime(a, (1_000_000_000, 1_000_000_000))
    assert digest_file(a) == before


def test_same_bytes_rewrite_keeps_the_digest(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", b"hello\n")
    before = digest_file(a)
    Path(a).unlink()
    write(tmp_path / "a.txt", b"hello\n")
    assert digest_file(a) == before


@pytest.mark.parametrize(
    "other", [b"hello!\n", b"hello", b"", b"Hello\n", b"hello\n\x00", b"hello\r\n"]
)
def test_content_change_changes_the_digest(tmp_path: Path, other: bytes) -> None:
    a = write(tmp_path / "a.txt", b"hello\n")
    before = digest_file(a)
    write(tmp_path / "a.txt", other)
    assert digest_file(a) != before


def test_empty_file_has_a_digest(tmp_path: Path) -> None:
    assert digest_file(write(tmp_path / "empty", b"")) is not None


@pytest.mark.parametrize("mode", [0o755, 0o744, 0o654, 0o645])
def test_executable_bit_changes_the_digest(tmp_path: Path, mode: int) -> None:
    a = write(tmp_path / "run.sh", b"#!/bin/sh\necho hi\n")
    plain = digest_file(a)
    os.chmod(a, mode)
    assert digest_file(a) != plain
    os.chmod(a, 0o644)
    assert digest_file(a) == plain


def test_other_mode_bits_do_not_change_the_digest(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", b"data")
    before = digest_file(a)
    os.chmod(a, 0o600)
    assert digest_file(a) == before


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert digest_file(str(tmp_path / "nope")) is None
    assert digest_file(str(tmp_path / "no" / "such" / "dir")) is None


def test_directory_is_none(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    assert digest_file(str(tmp_path / "d")) is None


def test_symlink_digest_is_its_target_not_the_content(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", b"A")
    write(tmp_path / "b.txt", b"A")
    link = tmp_path / "link"
    link.symlink_to("a.txt")
    d = digest_file(str(link))
    assert d is not None
    assert d != digest_file(str(tmp_path / "a.txt"))
    # same target name, same digest; another target, another digest (even with equal bytes)
    link2 = tmp_path / "sub" / "link2"
    link2.parent.mkdir()
    link2.symlink_to("a.txt")
    assert digest_file(str(link2)) == d
    link.unlink()
    link.symlink_to("b.txt")
    assert digest_file(str(link)) != d


def test_symlink_is_not_followed_when_the_target_changes(tmp_path: Path) -> None:
    target = write(tmp_path / "a.txt", b"A")
    link = tmp_path / "link"
    link.symlink_to("a.txt")
    before = digest_file(str(link))
    write(Path(target), b"B")
    assert digest_file(str(link)) == before


@pytest.mark.parametrize("target", ["missing.txt", "/nonexistent/x", "dir"])
def test_dangling_and_directory_symlinks(tmp_path: Path, target: str) -> None:
    (tmp_path / "dir").mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    d = digest_file(str(link))
    assert d is not None
    assert d.startswith("l")


def test_large_file_digest_matches_the_small_file_path(tmp_path: Path) -> None:
    data = os.urandom(1 << 16) * 24  # 1.5 MiB: the streaming branch
    big = write(tmp_path / "big.bin", data)
    expected = hashlib.blake2b(data, digest_size=16).hexdigest()
    assert digest_file(big) == expected
    small = write(tmp_path / "small.bin", data[:1000])
    assert digest_file(small) == hashlib.blake2b(data[:1000], digest_size=16).hexdigest()


def test_large_executable(tmp_path: Path) -> None:
    data = b"x" * ((1 << 20) + 7)
    big = write(tmp_path / "big", data, mode=0o755)
    assert digest_file(big) == hashlib.blake2b(data, digest_size=16).hexdigest() + "x"


@pytest.mark.parametrize("count", [3, 100])
def test_digest_many_matches_digest_file(tmp_path: Path, count: int) -> None:
    paths = [write(tmp_path / f"f{i}", f"content {i % 7}".encode()) for i in range(count)]
    paths.append(str(tmp_path / "missing"))
    out = digest_many(paths)
    assert list(out) == paths
    assert out == {p: digest_file(p) for p in paths}
    assert out[str(tmp_path / "missing")] is None


def test_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(digest_file(str(fifo))), daemon=True)
    worker.start()
    worker.join(timeout=0.3)
    blocked = worker.is_alive()
    if blocked:
        # release the reader: opening the write end lets its open() return
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(timeout=5)
    assert not blocked
    assert result == [None]


# ---- scan: the start-up walk over real directories ---------------------------------------------


def test_scan_collects_context_files_and_skips_ignored(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    web = ws / "web"
    write(web / "Dockerfile", b"FROM scratch\n")
    write(web / "app.py", b"print(1)\n")
    write(web / "src" / "lib.py", b"x = 1\n")
    write(web / "debug.log", b"noise")
    write(web / "node_modules" / "pkg" / "index.js", b"module")
    write(web / ".git" / "HEAD", b"ref")
    write(ws / "docker" / "web.Dockerfile", b"FROM scratch\n")
    ctx = str(web)
    project = Project(
        "demo",
        str(ws),
        (str(ws / "compose.yaml"),),
        {"web": ServiceSpec("web", ctx, str(ws / "docker" / "web.Dockerfile"))},
    )
    mapper = PathMapper(
        project, {ctx: DockerIgnore.parse("*.log\n")}, IgnoreList(DEFAULT_IGNORES), str(ws)
    )
    result = scan(mapper, ["web"])
    assert set(result) == {"web"}
    assert set(result["web"]) == {
        "web/Dockerfile",
        "web/app.py",
        "web/src/lib.py",
        "docker/web.Dockerfile",
    }
    assert result["web"]["web/app.py"] == digest_file(str(web / "app.py"))


def test_scan_nested_context_dockerignored_by_the_outer_one(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write(ws / "app" / "main.py", b"main")
    write(ws / "app" / "admin" / "views.py", b"views")
    write(ws / "docker" / "admin.Dockerfile", b"FROM scratch\n")
    app, admin = str(ws / "app"), str(ws / "app" / "admin")
    project = Project(
        "demo",
        str(ws),
        (),
        {
            "app": ServiceSpec("app", app, None),
            "admin": ServiceSpec("admin", admin, str(ws / "docker" / "admin.Dockerfile")),
        },
    )
    mapper = PathMapper(
        project, {app: DockerIgnore.parse("admin\n")}, IgnoreList(DEFAULT_IGNORES), str(ws)
    )
    result = scan(mapper, ["app", "admin"])
    assert set(result["app"]) == {"app/main.py"}
    assert "app/admin/views.py" in result["admin"]
