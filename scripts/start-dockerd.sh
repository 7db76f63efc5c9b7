#!/usr/bin/env bash
# Start dockerd in the background unless a daemon already answers; wait until it does.
set -euo pipefail
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
if docker info >/dev/null 2>&1; then exit 0; fi
$SUDO sh -c 'nohup dockerd >>/var/log/dockerd.log 2>&1 &'
for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && exit 0; sleep 0.25; done
echo "dockerd did not come up; last lines of /var/log/dockerd.log:" >&2
tail -20 /var/log/dockerd.log >&2
exit 1
