#!/usr/bin/env bash
# Run the sidecar on the bundled example (compose/example): sets up the host if needed,
# starts a private Redis on 127.0.0.1:6390, brings the project up and keeps it live.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup-host.sh"
example="$here/compose/example"
for ctx in web api; do cp -f "$(command -v busybox || echo /bin/busybox)" "$example/$ctx/busybox"; done
port="${SIDECAR_EXAMPLE_REDIS_PORT:-6390}"
if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
  redis-server --daemonize yes --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null
fi
cat <<MSG

  Example project: $example
  Open   http://127.0.0.1:8081/  (web)   and   http://127.0.0.1:8082/  (api)
  Edit   $example/web/www/index.html   and reload: the new version is live in about a second.
  State  redis-cli -p $port xrange sidecar:sidecar-example:events - +
         sidecar status --workspace $example --project-name sidecar-example --redis-url redis://127.0.0.1:$port/0
  Stop   Ctrl-C (the project keeps running; 'docker compose -p sidecar-example down' removes it)

MSG
exec "${PYTHON:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python}" -m sidecar run --workspace "$example" \
  --redis-url "redis://127.0.0.1:$port/0" "$@"
