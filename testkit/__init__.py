"""Real parts for the integration tests and the benchmarks alike: a private redis-server,
the Traefik binary, fixture compose projects built FROM scratch with static busybox, the
sidecar and `docker compose watch` as real processes, load generators and recorders.

Not shipped in the sidecar's wheel (pyproject packages only `sidecar*`); tests/ and bench/
import it, and bench/ imports nothing of tests/."""
