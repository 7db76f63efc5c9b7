"""The sidecar finds its own container id in /proc/self/mountinfo (none on a host)."""

from __future__ import annotations

from sidecar.compose import own_container_id

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
