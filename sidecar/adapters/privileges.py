"""Leave root at start-up when the container was started as root (the image's default), so
`docker run` with the two mounts needs no `--group-add` or `--user`.

The new identity: the workspace owner's uid (it can read the workspace, whose home directory
is often not world-readable), or the image's `sidecar` user when root owns the workspace and
others may read it; always with the Docker socket's group, which is what grants Docker access.
When neither can read the workspace, it stays root and says so. This limits what a bug in the
sidecar could do to the container's files; it is no boundary against the socket, which is
root on the host."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

IMAGE_UID = 10001
NOT_ROOT = "not root"


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    why: str


def choose(
    euid: int, socket: os.stat_result | None, workspace: os.stat_result, image_uid: int = IMAGE_UID
) -> Identity | str:
    """Whom to become, or why to stay (pure: the callers hand in what `stat` said)."""
    if euid != 0:
        return NOT_ROOT
    gid = socket.st_gid if socket is not None else workspace.st_gid
    if workspace.st_uid != 0:
        return Identity(workspace.st_uid, gid, "the workspace owner")
    others_read = stat.S_IROTH | stat.S_IXOTH
    if workspace.st_mode & others_read == others_read:
        return Identity(image_uid, gid, "the image's sidecar user")
    return "root owns the workspace and others cannot read it"


def socket_path() -> Path | None:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return Path(host.removeprefix("unix://")) if host.startswith("unix://") else None


def drop_root(workspace: Path) -> Identity | str:
    """Switch identity if `choose` says so: the new identity, or why it stayed."""
    sock = socket_path()
    try:
        socket_stat = sock.stat() if sock is not None else None
    except OSError:
        socket_stat = None
    try:
        decision = choose(os.geteuid(), socket_stat, workspace.stat())
    except OSError as exc:
        decision = f"cannot stat the workspace: {exc}"
    if isinstance(decision, Identity):
        os.setgroups([decision.gid])
        os.setgid(decision.gid)
        os.setuid(decision.uid)
    return decision
