"""Sync benchmark (issue 11): every `develop.watch` action of the sidecar against `docker
compose watch`, both tools in one invocation, one after the other on identical fixtures
(the test kit's busybox httpd FROM scratch, `init: true`; the image has /bin/busybox but no
`rm` on its PATH).

1. sync edit-to-live: edits of www/index.html under a `sync` rule, with 50 requests/s
   (open loop) on the published port: edit-to-live, failed requests and containers created
   per edit;
2. `touch` of every path under www/: syncs (sidecar `synced` events, compose watch's
   "Syncing service" lines);
3. delete propagation: a synced file deleted, time until GET answers 404;
4. `git checkout other`, 3,000 files changed or added under www/: time until the last is
   served, files missing after (every one GET);
5. `sync+restart` of a 2-replica served service through Traefik under 50 requests/s (the
   sidecar via Traefik's Redis provider, compose watch via its Docker provider, as
   bench/zero_downtime): failed requests and edit-to-live;
6. `rebuild` of a service alone on its network with a published port: edit-to-live and
   failed requests.

The package is split like the other long benchmarks: `fixture` writes the compose projects,
`tools` adapts the other benchmarks' tools, `record` drives the phases, `analyse` computes
figures and targets (pure, tested in tests/bench/test_sync_analysis.py), `report` prints;
`__main__` holds the flags.

Run from the repository root: `python3 -m bench.sync [--edits 5] [--json F]`.
"""
