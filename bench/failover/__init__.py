"""Failover benchmark: how fast an instance that is killed or stopped leaves the rotation,
through the sidecar's Redis publication (Traefik's Redis provider) compared with Traefik's
own Docker provider, on the same containers at the same time.

The fixture is one served service `app` (3 replicas, busybox httpd FROM scratch, `init:
true`). Each instance writes its hostname (the container id prefix) into its index page, so
every response says which instance answered. On SIGTERM it kills httpd at once (connections
are refused from then on) but exits only 3 s later, like an application that shuts down
slowly.

Two routing paths, each with a steady open-loop stream of requests (50/s, a fresh connection
per request, 1 s timeout, Host: app.bench):

- (a) Traefik #1, Redis provider, reading what `python -m sidecar run` publishes;
- (b) Traefik #2, Docker provider, on the same containers (compose labels `traefik.*`).

Trials: `--trials` `docker kill` (SIGKILL) and as many `docker stop` on one serving instance
each, under the load. Between trials the sidecar replaces the instance, both proxies route
to exactly the three running instances and have not changed that for 2.5 s (more than
Traefik's 2 s provider throttle), and both streams are answered by all three without a
failure for 2 s. Measured per trial and path from the first docker event of the action
(`docker events`, timeNano): when the last request reached the victim (Traefik's access
log), the last response it served and the first failed request, failed requests until the
path is stable again, and for (a) when the victim's URL left the Redis list (keyspace
notification, then LRANGE to confirm).

With `--retry 2,0` (the default) the kill and stop trials run once per setting: with the
sidecar's Traefik retry middleware (x-sidecar `retry: {attempts: 2}`, its default), then
without it (`attempts: 0`); path (b) is the same in both. So both settings and Traefik's
Docker provider are compared in one run.

The package is split like every long benchmark: `record` drives the real parts and records
each trial as plain data, `analyse` turns a recorded trial into figures (pure, unit-tested on
a recorded trial in tests/bench/), `report` prints them; `__main__` holds the flags.

Run from the repository root: `python3 -m bench.failover [--trials 10] [--json F]`.
"""
