"""The Engine and host adapters' pure edges: the tar stream a sync sends (container paths,
modes, symlinks, vanished files), a missing program told from a failing one, and what the
neighbour flush puts on its command line."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from sidecar.adapters.engine import build_tar
from sidecar.core.types import ExecResult


def test_build_tar_keeps_paths_modes_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    script = tmp_path / "sub" / "run.sh"
    script.write_text("echo hi\n")
    script.chmod(0o750)
    os.symlink("sub/run.sh", tmp_path / "link")
    tar, size = build_tar(
        {
            "/app/sub/run.sh": str(script),
            "/app/link": str(tmp_path / "link"),
            "/app/gone": str(tmp_path / "vanished"),  # deleted meanwhile: left out
        }
    )
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        members = {m.name: m for m in t.getmembers()}
        assert set(members) == {"app/sub/run.sh", "app/link"}
        assert members["app/sub/run.sh"].mode & 0o777 == 0o750
        assert members["app/link"].issym() and members["app/link"].linkname == "sub/run.sh"
        f = t.extractfile("app/sub/run.sh")
        assert f is not None and f.read() == b"echo hi\n"
    assert size == len("echo hi\n")


def test_a_missing_program_is_told_from_a_failing_one() -> None:
    missing = 'OCI runtime exec failed: exec: "rm": executable file not found in $PATH'
    assert ExecResult(126, missing).missing
    assert not ExecResult(1, "rm: cannot remove: Permission denied").missing
    assert not ExecResult(127, "sh: foo: not found").missing


def test_neighbour_flush_takes_only_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    from sidecar.adapters import neighbours

    calls: list[list[str]] = []

    def run(cmd: list[str], **_: object) -> subprocess.CompletedProcess[bytes]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(shutil, "which", lambda _: "/sbin/ip")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert neighbours.forget(["10.0.0.2", "; rm -rf /", "fe80::1"]) == 2
    assert calls == [
        ["/sbin/ip", "neigh", "flush", "to", "10.0.0.2"],
        ["/sbin/ip", "neigh", "flush", "to", "fe80::1"],
    ]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert neighbours.forget(["10.0.0.2"]) == 0
