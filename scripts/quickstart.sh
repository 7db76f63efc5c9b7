#!/usr/bin/env bash
# The README's first command: on a fresh Debian/Ubuntu machine, install what is missing
# (Docker Engine from the distribution, the compose plugin, Redis, the sidecar) and bring up
# the reference stack (compose/compose.yaml): the example app behind Traefik, kept live by the
# sidecar running in a container. Prints the URL to open and the file to edit.
# Where no registry answers, the stack's base images are built locally (stand-ins).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup-host.sh"
exec bash "$here/scripts/stack.sh" up "$@"
