"""The host's neighbour (ARP) cache, after a container was recreated on a published port.

While compose replaces a container, a request to its published port reaches `docker-proxy`,
which dials the container address that just went away: the host's neighbour entry for that
address goes INCOMPLETE, and when the new container comes up on the same address the kernel
only resolves it at its next ARP retry (1 s by default), so every client waits ~0.7 s more
(measured in bench/README's caveat). Forgetting the entry once the new container runs makes
the next packet resolve it at once. Only possible in the host's network namespace with
CAP_NET_ADMIN (the sidecar as a host process run by root); elsewhere this does nothing."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterable

from loguru import logger


def forget(addresses: Iterable[str]) -> int:
    """`ip neigh flush to ADDRESS` for each address (an argument list, no shell). How many
    were flushed without an error; 0 when not root or without iproute2."""
    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        return 0
    done = 0
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            continue
        try:
            proc = subprocess.run(
                [ip, "neigh", "flush", "to", address],
                capture_output=True,
                timeout=2,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.debug("ip neigh flush {}: {}", address, exc)
            continue
        done += proc.returncode == 0
    return done
