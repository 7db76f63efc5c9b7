#!/usr/bin/env bash
# Bring the reference stack (compose/compose.yaml) up or down: `scripts/stack.sh up|down|ps`.
# It mounts the workspace into the sidecar at its host path (see compose/compose.yaml).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SIDECAR_STACK_DIR="$here/compose"
cmd="${1:-up}"; shift || true
case "$cmd" in
  up)   docker compose -f "$here/compose/compose.yaml" up -d --build "$@"
        cat <<MSG
  web:  curl -H 'Host: web.localhost' http://127.0.0.1:8000/   (edit compose/app/web/www/index.html)
  api:  curl -H 'Host: api.localhost' http://127.0.0.1:8000/
  state docker compose -f compose/compose.yaml exec redis redis-cli lrange sidecar:sidecar-demo:rotation:web 0 -1
  dashboard http://127.0.0.1:8088/dashboard/
MSG
        ;;
  *)    docker compose -f "$here/compose/compose.yaml" "$cmd" "$@" ;;
esac
