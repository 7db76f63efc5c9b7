"""Delivery from a registry (issue 14): a new image pushed to the tag a service runs, until the
new version is served through Traefik, measured beside what a user would otherwise do.

One invocation, three phases one after the other, each with its own private registry
(Debian's docker-registry on loopback; images pushed straight through its HTTP API, one
busybox layer and a page `vN`, no Docker build, nothing pulled from outside) and its own
compose project with one image-only 2-replica service `web` (`image:
127.0.0.1:<port>/web:latest`, busybox httpd), under 50 requests/s through a real Traefik:

1. **notify**: the registry's notifications go to the daemon's `POST /v1/hooks/registry`
   (Bearer registry_hook_token); per push: push -> `pull-started`, the pull, the rollout,
   push -> `vN` first served and served alone, failed requests;
2. **drift**: a registry that tells nobody; the daemon's periodic drift check
   (`drift_interval_s`, `--interval`, default 5 s) finds the push; the same figures, and
   push -> `drift-checked` naming `web`;
3. **by hand** (Watchtower's way: the old container stopped, then the new one started): no
   sidecar, a plain compose service with `deploy.replicas: 2` and Traefik labels behind a
   Traefik with its Docker provider; right after each push the benchmark runs `docker
   compose pull web && docker compose up -d web` (a Watchtower woken at once: its best case).

The package: `record` drives the phases and records each push as plain data (times, the
events stream, the load's answers, the commands), `analyse` computes the figures from such
records (pure), `__main__` holds the flags and prints the table.

Run from the repository root: `python3 -m bench.registry [--runs 5] [--interval 5] [--json F]`.
"""
