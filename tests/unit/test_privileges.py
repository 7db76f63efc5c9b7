"""Whom the sidecar becomes when its container starts as root (pure decision, plain stats)."""

from __future__ import annotations

import os

from sidecar.adapters.privileges import IMAGE_UID, NOT_ROOT, Identity, choose


def st(uid: int, gid: int, mode: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


SOCKET = st(0, 998, 0o140660)  # root:docker srw-rw----


def test_workspace_owner_with_the_sockets_group() -> None:
    home = st(1000, 1000, 0o40750)  # a private home directory: only its owner reads it
    assert choose(0, SOCKET, home) == Identity(1000, 998, "the workspace owner")


def test_image_user_when_root_owns_a_readable_workspace() -> None:
    assert choose(0, SOCKET, st(0, 0, 0o40755)) == Identity(
        IMAGE_UID, 998, "the image's sidecar user"
    )


def test_stays_root_when_nobody_else_could_read_the_workspace() -> None:
    why = choose(0, SOCKET, st(0, 0, 0o40700))
    assert isinstance(why, str) and "cannot read" in why


def test_already_non_root_changes_nothing() -> None:
    assert choose(1000, SOCKET, st(1000, 1000, 0o40755)) == NOT_ROOT


def test_without_a_socket_the_workspace_group_is_kept() -> None:
    assert choose(0, None, st(1000, 1001, 0o40755)) == Identity(1000, 1001, "the workspace owner")
