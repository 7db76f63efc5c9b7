"""Zero-downtime benchmark: redeploys under load, the sidecar against `docker compose watch`.

Both tools run one after the other (never at the same time) on the same fixture: a busybox
httpd service built FROM scratch serving `www/index.html`, `init: true`, 2 replicas, never
published on a host port, behind a real Traefik on 127.0.0.1:

- sidecar: `python -m sidecar run` with `x-sidecar: {port: 8080, replicas: 2, rule:
  Host(`web.bench`)}`, its own redis-server, and Traefik's Redis provider on that Redis;
- compose watch: `deploy.replicas: 2`, `develop.watch` rebuild rule on www/, and Traefik's
  Docker provider (labels), which is what one would use without the sidecar.

For each tool, under a steady open-loop load of ~50 requests/s through Traefik (fresh
connection per request, 1 s timeout), N consecutive edits of www/index.html; per redeploy:
failed requests from the write until the tool has settled, and edit-to-live (see
bench/README.md for the exact definitions).

The package is split like every long benchmark: `record` drives the tools and records each
redeploy window as plain data (its requests, the tool's own timings), `analyse` computes the
figures from it (pure), `report` prints them; `__main__` holds the flags.

Run from the repository root: `python3 -m bench.zero_downtime [--redeploys 10] [--json F]`.
"""
