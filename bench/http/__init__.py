"""HTTP face benchmarks (issue 12). So far: `GET /v1/status` latency on a large simulated
project, against the CLI's `sidecar status --json` reading the same Redis."""
