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
start() {
  $SUDO bash -c 'for fd in /proc/$$/fd/*; do fd="${fd##*/}"; [ "$fd" -le 2 ] || eval "exec $fd>&-"; done
    nohup dockerd </dev/null >>/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 1 240); do
    docker info >/dev/null 2>&1 && return 0
    pgrep -x dockerd >/dev/null || return 1  # it died while starting
    sleep 0.25
  done
  return 1
}
start && exit 0
# dockerd 20.10 panics at start-up in libnetwork's reservePools when it was killed while it
# created a network (its network store holds a network without address pools). In CI only,
# where every container is a test's, move that store aside once: dockerd makes a new one and
# recreates its default networks; nothing else is touched.
store=/var/lib/docker/network/files/local-kv.db
if [ "${CI:-}" = true ] && tail -60 /var/log/dockerd.log | grep -q 'reservePools' && [ -f "$store" ]; then
  echo "dockerd's network store is corrupt (reservePools panic): moving it aside, starting again" >&2
  $SUDO mv "$store" "$store.broken-$(date +%s)"
  start && exit 0
fi
echo "dockerd did not come up; last lines of /var/log/dockerd.log:" >&2
tail -20 /var/log/dockerd.log >&2
exit 1
