"""Who the sidecar is: its own container (from /proc/self/mountinfo; none on a host) and the
project name, picked the way compose named the project."""

from __future__ import annotations

import pytest

from sidecar.adapters.compose import OwnContainer, own_container_id, pick_project_name

CID = "3f1c" + "a" * 60

IN_CONTAINER = f"""\
612 540 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X
640 612 8:1 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw
641 612 8:1 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw
642 612 0:5 /docker.sock /var/run/docker.sock rw,nosuid - tmpfs tmpfs rw
"""

ON_HOST = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:45 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw
"""


def test_container_id_from_the_files_docker_mounts() -> None:
    assert own_container_id(IN_CONTAINER) == CID


def test_no_id_on_a_host_even_with_other_containers_mounted() -> None:
    assert own_container_id(ON_HOST) is None
    # a host that has a container's state directory mounted somewhere else is still a host
    other = f"70 22 8:1 /var/lib/docker/containers/{CID}/ /mnt/x rw - ext4 /dev/sda1 rw\n"
    assert own_container_id(ON_HOST + other) is None


FILES = frozenset({"/src/app/compose.yaml"})
OWN = OwnContainer(CID, "renamed", "sidecar", FILES)


def never() -> str | None:
    raise AssertionError("the compose file must not be read when a name is already known")


@pytest.mark.parametrize(
    ("setting", "own", "env", "expected"),
    [
        ("explicit", OWN, "fromenv", "explicit"),  # the setting wins
        (None, OWN, "fromenv", "renamed"),  # `compose -p renamed up` named our own container
        (None, None, "fromenv", "fromenv"),  # on a host: COMPOSE_PROJECT_NAME
    ],
)
def test_name_known_without_reading_the_compose_file(
    setting: str | None, own: OwnContainer | None, env: str | None, expected: str
) -> None:
    assert pick_project_name(setting, own, FILES, env, never) == expected


def test_own_container_of_other_files_does_not_name_this_project() -> None:
    other = OwnContainer(CID, "elsewhere", "sidecar", frozenset({"/other/compose.yaml"}))
    assert pick_project_name(None, other, FILES, None, lambda: "fromfile") == "fromfile"


def test_nothing_known_leaves_the_directory_name_to_the_caller() -> None:
    assert pick_project_name(None, None, FILES, None, lambda: None) is None
