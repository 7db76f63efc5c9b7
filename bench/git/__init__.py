"""Delivery from git (issue 13): a push to the followed branch, until the new version is served
through Traefik with no failed request.

One invocation, two daemons one after the other, each on its own compose project (a clone of
its own bare remote on disk, `file://`), both routed by one real Traefik on the private
Redis: a served 2-replica `web` and a served 1-replica `api` that no push changes.

1. **webhook** (`git_updates=webhook`): N pushes changing `web/www/index.html` to `vN`, each
   followed by the signed GitHub push webhook on `POST /v1/hooks/github`; per push: hook ->
   202, hook -> `git-updated` (and its `seconds`: fetch + move), hook -> `build-started`
   (the sidecar's own share), build-started -> `built` -> `deployed`, hook -> `vN` first
   served through Traefik, failed requests under 50 requests/s;
2. **poll** (`git_updates=poll`, `git_poll_s`): the same pushes, no webhook: push -> `vN`
   served and push -> `git-updated` (up to one poll interval of waiting is in both).

The package is split like the other long benchmarks: `record` drives the daemons and
records each push as plain data (times, the events stream, the load's answers), `analyse`
computes the figures and targets from such records (pure, tested in
tests/bench/test_git_analysis.py), `report` prints; `__main__` holds the flags.

Run from the repository root: `python3 -m bench.git [--runs 5] [--json F]`.
"""
