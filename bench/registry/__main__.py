"""`python3 -m bench.registry`: flags, the three phases (notify, drift, by hand) one after the
other, the table and the JSON."""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time

import bench.registry
from bench.common import (
    Json,
    begin,
    fmt,
    ratio,
    redis_and_traefik,
    table,
    verdict,
    warn_leftovers,
    write_json,
)
from bench.registry.analyse import drift_period, push_figures, summarise
from bench.registry.record import (
    BY_HAND,
    DRIFT,
    MODES,
    NOTIFY,
    RATE,
    ByHandPhase,
    DriftPhase,
    NotifyPhase,
    Phase,
)

HUB = "sidecar:hub:images"  # shared by every sidecar on the Redis: the registry pushes
LABELS = {NOTIFY: "sidecar, notification", DRIFT: "sidecar, drift check", BY_HAND: "by hand"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.registry",
        description=bench.registry.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5, help="pushes per phase (default 5)")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="drift_interval_s of the drift phase (5)"
    )
    parser.add_argument("--seed", type=int, default=14, help="of the drift pushes' jitter")
    parser.add_argument("--dir", metavar="DIR", help="where to create the fixtures (tmp)")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if args.interval <= 0:
        parser.error("--interval must be > 0")
    return args


def run_phase(phase: Phase, runs: int, rng: random.Random) -> tuple[Json, list[Json]]:
    out: Json = {"project": phase.project}
    records: list[Json] = []
    print(f"{phase.mode} ({phase.project}):", flush=True)
    try:
        out["start_seconds"] = phase.start()
        for n in range(1, runs + 1):
            record = phase.one_push(n, rng)
            records.append(record)
            p = push_figures(record)
            print(
                f"  {p['content']}: first served {fmt(p['to_first_served'], ' s')}, alone "
                f"{fmt(p['to_live'], ' s')}, {p['failed']}/{p['requests']} failed",
                flush=True,
            )
        out |= phase.extra()
    finally:
        out["left_after_cleanup"] = phase.stop()
    out["pushes"] = [push_figures(r) for r in records]
    out["summary"] = summarise(out["pushes"])
    if out.get("drift_checked_at"):
        out["drift_period"] = drift_period(out["drift_checked_at"])
    return out, records


def _med(summary: Json, name: str) -> float | None:
    figure = summary.get(name)
    return float(figure["median"]) if figure else None


def _s(value: float | None) -> str:
    return fmt(value, " s")


def pushes_table(mode: str, pushes: list[Json]) -> str:
    """Every push of one phase: the times and where they went."""
    split = {
        NOTIFY: ("to_pull_started", "pull", "pull_done_to_first_served", "rollout"),
        DRIFT: ("to_drift_checked", "to_pull_started", "pull", "pull_done_to_first_served"),
        BY_HAND: ("pull_cmd", "up_cmd", "old_stopped_to_new_started", "up_done_to_first_served"),
    }[mode]
    headers = [mode, "first served", "served alone", *split, "failed (by status)"]
    rows = [
        [
            p["content"],
            _s(p["to_first_served"]),
            _s(p["to_live"]),
            *(_s(p.get(name)) for name in split),
            f"{p['failed']}/{p['requests']} {p['failed_by_status'] or ''}".rstrip(),
        ]
        for p in pushes
    ]
    return table(headers, rows)


def report(result: Json, interval: float) -> None:
    for mode in MODES:
        print(f"\n{pushes_table(mode, result[mode]['pushes'])}")
    print(f"\nmedians over {result['runs']} pushes each, {RATE:g} requests/s through Traefik")
    rows = []
    hand = result[BY_HAND]["summary"]
    for mode in MODES:
        s = result[mode]["summary"]
        label = LABELS[mode] + (f" ({interval:g} s)" if mode == DRIFT else "")
        split = {
            NOTIFY: f"push->pull-started {_s(_med(s, 'to_pull_started'))}",
            DRIFT: f"push->drift-checked {_s(_med(s, 'to_drift_checked'))}, "
            f"->pull-started {_s(_med(s, 'to_pull_started'))}",
            BY_HAND: f"compose pull {_s(_med(s, 'pull_cmd'))}, up -d {_s(_med(s, 'up_cmd'))}",
        }[mode]
        if mode != BY_HAND:
            split += (
                f", pull {_s(_med(s, 'pull'))}, pull done->served "
                f"{_s(_med(s, 'pull_done_to_first_served'))}"
            )
        rows.append(
            [
                label,
                _s(_med(s, "to_live")),
                ratio(_med(s, "to_live"), _med(hand, "to_live")),
                _s(_med(s, "to_first_served")),
                f"{s['failed']}/{s['requests']} {s['failed_per_push']}",
                split,
            ]
        )
    headers = [
        "way",
        "push->live (served alone)",
        "ratio to by hand",
        "push->first served",
        "failed requests (per push)",
        "where the time goes (medians)",
    ]
    print(table(headers, rows))
    period = result[DRIFT].get("drift_period")
    if period:
        print(
            f"drift checks: {period['checks']}, every {fmt(period['median_gap'], ' s')} "
            f"(median gap; drift_interval_s={interval:g})"
        )
    for mode in (NOTIFY, DRIFT):
        s = result[mode]["summary"]
        print(f"{LABELS[mode]}: 0 failed requests: {verdict(s['failed'] == 0)}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logs, base, result = begin("registry", args.dir)
    result |= {"runs": args.runs, "interval_s": args.interval, "rate": RATE}
    records: dict[str, list[Json]] = {}
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    try:
        # after the phases' clean-up only the shared hub should be left on the Redis
        with redis_and_traefik(base, logs, HUB, result) as (server, traefik):
            phases: list[Phase] = [
                NotifyPhase(base, logs, server.url, traefik),
                DriftPhase(base, logs, server.url, traefik, args.interval),
                ByHandPhase(base, logs),
            ]
            for phase in phases:
                result[phase.mode], records[phase.mode] = run_phase(phase, args.runs, rng)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result["seconds"] = time.monotonic() - t0
    report(result, args.interval)
    warn_leftovers(result, MODES)
    print(f"\n{result['seconds']:.0f} s in all")
    result["records"] = records
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
