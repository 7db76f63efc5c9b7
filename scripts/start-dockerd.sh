#!/usr/bin/env bash
# Start dockerd in the background unless a daemon already answers; wait until it does.
# A daemon that is still shutting down is waited for first (two daemons cannot share the
# socket and pid file).
set -euo pipefail
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
if docker info >/dev/null 2>&1; then exit 0; fi
for _ in $(seq 1 240); do pgrep -x dockerd >/dev/null || break; sleep 0.25; done
if pgrep -x dockerd >/dev/null; then
  docker info >/dev/null 2>&1 && exit 0
  echo "a dockerd process exists but does not answer; see /var/log/dockerd.log" >&2
  exit 1
fi
# The daemon outlives this script: it gets no descriptor of ours beyond stdio. An inherited one
# stays open for the daemon's whole life; a lock held by a caller (`flock LOCK .ci/run` starting
# a bare machine's dockerd) would never be released.
$SUDO bash -c 'for fd in /proc/$$/fd/*; do fd="${fd##*/}"; [ "$fd" -le 2 ] || eval "exec $fd>&-"; done
  nohup dockerd </dev/null >>/var/log/dockerd.log 2>&1 &'
for _ in $(seq 1 240); do docker info >/dev/null 2>&1 && exit 0; sleep 0.25; done
echo "dockerd did not come up; last lines of /var/log/dockerd.log:" >&2
tail -20 /var/log/dockerd.log >&2
exit 1
