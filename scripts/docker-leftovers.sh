#!/usr/bin/env bash
# What a run left on the Docker host: `snapshot FILE` records every container, network, volume
# and image (tagged, dangling and intermediate, by id) that exists now; `check FILE` lists each
# one that exists now but not in FILE, and exits 1 when there is any. `.ci/run` takes the
# snapshot before the tests and checks after them, so objects present before the run are never
# counted (nor touched: this script only reads).
#
# The suite's own names, for reading the report: integration tests use compose projects
# `sct<test name><hex>` (tests/integration/conftest.py), the stack test `sctstack<hex>` with its
# sidecar image `<project>-sidecar` and the stand-in base images of scripts/stand-in-images.sh
# (traefik:v3.7, redis:7, busybox:1.36, python:3.11-slim) when it built them; benchmarks use
# `benchrb*`, `benchscan*`, `benchzd*`, `benchfo*`, `benchscalecw*`/`benchscalesc*`. Images
# compose built carry the label com.docker.compose.project=<project>.
set -euo pipefail

inventory() {
  {
    docker ps -aq --no-trunc | sed 's/^/container /'
    # user-defined only: dockerd re-creates its own bridge with a new id at every start (the
    # suite restarts it)
    docker network ls -q --no-trunc --filter type=custom | sed 's/^/network /'
    docker volume ls -q | sed 's/^/volume /'
    docker images -aq --no-trunc | sed 's/^/image /'
  } | sort -u
}

describe() {
  local kind="$1" id="$2"
  case "$kind" in
    container)
      docker container inspect --format \
        '{{.Name}} image={{.Config.Image}} project={{index .Config.Labels "com.docker.compose.project"}} state={{.State.Status}}' \
        "$id" 2>/dev/null ;;
    network)
      docker network inspect --format \
        '{{.Name}} project={{index .Labels "com.docker.compose.project"}}' "$id" 2>/dev/null ;;
    volume)
      docker volume inspect --format \
        '{{.Name}} project={{index .Labels "com.docker.compose.project"}}' "$id" 2>/dev/null ;;
    image)
      docker image inspect --format \
        '{{if .RepoTags}}{{join .RepoTags ","}}{{else}}<none> (dangling){{end}} project={{index .Config.Labels "com.docker.compose.project"}} created={{.Created}}' \
        "$id" 2>/dev/null ;;
  esac || echo "(gone)"
}

case "${1:-}" in
  snapshot)
    [ -n "${2:-}" ] || { echo "usage: $0 snapshot FILE" >&2; exit 2; }
    inventory >"$2"
    ;;
  check)
    [ -f "${2:-}" ] || { echo "usage: $0 check FILE (from snapshot)" >&2; exit 2; }
    now="$(mktemp)"
    trap 'rm -f "$now"' EXIT
    inventory >"$now"
    left="$(comm -13 "$2" "$now")"
    if [ -z "$left" ]; then
      echo "[leftovers] none: every container, network, volume and image is as before the run"
      exit 0
    fi
    echo "[leftovers] the run left $(wc -l <<<"$left") Docker object(s) behind:" >&2
    while read -r kind id; do
      short="${id#sha256:}"
      echo "  $kind ${short:0:12}: $(describe "$kind" "$id")" | cut -c1-240 >&2
    done <<<"$left"
    exit 1
    ;;
  *)
    echo "usage: $0 snapshot FILE | check FILE" >&2
    exit 2
    ;;
esac
