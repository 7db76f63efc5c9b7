"""Command line: `sidecar run | status | check`. Flags mirror the settings fields (flags win
over `SIDECAR_*` environment variables)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, cast

import redis
from loguru import logger
from pydantic import SecretStr, ValidationError

from sidecar import __version__
from sidecar.adapters import logs
from sidecar.adapters.compose import Compose
from sidecar.adapters.privileges import NOT_ROOT, Identity, drop_root
from sidecar.core import progress
from sidecar.core.keys import Keys
from sidecar.settings import Settings, redact_url


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (also SIDECAR_<NAME> environment variables)")
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = (field.description or "").split(". ")[0]
        if field.annotation is bool:
            group.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            group.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=help_text)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in Settings.model_fields
        if getattr(args, name, None) is not None
    }
    if "redis_url" in overrides:
        overrides["redis_url"] = SecretStr(overrides["redis_url"])
    return Settings(**overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sidecar", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon in the foreground")
    status = sub.add_parser("status", help="print what the daemon knows (from Redis)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--watch", "-w", action="store_true", help="redraw every --interval seconds until Ctrl-C"
    )
    status.add_argument(
        "--interval", type=float, default=2.0, help="seconds between --watch frames (2)"
    )
    sub.add_parser("check", help="exit 0 only if the daemon's heartbeat is fresh")
    scale = sub.add_parser("scale", help="run N instances of a served service")
    scale.add_argument("service")
    scale.add_argument("replicas")
    spawn = sub.add_parser("spawn", help="one more instance of a served service")
    spawn.add_argument("service")
    destroy = sub.add_parser("destroy", help="one instance fewer (optionally a named one)")
    destroy.add_argument("service")
    destroy.add_argument("instance", nargs="?")
    for name, text in (
        ("rebuild", "build and roll out even without a source change"),
        ("redeploy", "roll out the current image"),
        ("rollback", "roll out the previous good version's image, without a build"),
    ):
        sub.add_parser(name, help=text).add_argument("service")
    for name, text in (
        ("pause", "stop reacting to file changes (one service or all)"),
        ("resume", "react to file changes again"),
    ):
        sub.add_parser(name, help=text).add_argument("service", nargs="?")
    drift = sub.add_parser(
        "drift", help="compare image-only services' digests with their registries'"
    )
    drift.add_argument("--apply", action="store_true", help="pull and roll out what drifted")
    sub.add_parser("reload", help="re-read the compose project")
    signal_p = sub.add_parser("signal", help="control the running daemon")
    signal_p.add_argument(
        "signal",
        choices=["quit", "stop", "redeploy"],
        help="quit: stop after in-flight work; stop: at once; redeploy: roll out every service",
    )
    events = sub.add_parser("events", help="print the events stream")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--count", type=int, default=100, help="how many past events")
    for name, p in sub.choices.items():
        if p is not run:
            p.add_argument(
                "--timeout",
                type=float,
                default=300.0,
                help="seconds to wait for a command's result",
            )
        if name not in ("run", "status", "check", "events"):
            p.add_argument(
                "--quiet",
                "-q",
                action="store_true",
                help="print only the result, not the steps as they happen",
            )
        _add_setting_flags(p)
    return parser


def _keys(settings: Settings) -> Keys:
    """The daemon's keys: the project is named the way the daemon names it."""
    project = settings.project_name or Compose(settings).resolve_identity()
    return Keys(settings.key_prefix, project)


def cmd_run(settings: Settings, identity: Identity | str | None = None) -> int:
    from sidecar.adapters.store import Store, connect
    from sidecar.adapters.watcher import WatchLimitError
    from sidecar.runtime.daemon import Daemon

    compose = Compose(settings)
    compose.resolve_identity()
    logs.configure(settings.log_level, settings.log_json, compose.project_name)
    logger.info(
        "compose-sidecar {} starting: workspace {}, redis {}",
        __version__,
        settings.workspace,
        redact_url(settings.redis_url.get_secret_value()),
    )
    if isinstance(identity, Identity):
        logger.info("left root: uid {} ({}), gid {}", identity.uid, identity.why, identity.gid)
    elif identity not in (None, NOT_ROOT):
        logger.warning("running as root: {}", identity)
    if compose.own_services:
        logger.info(
            "running as service {} of project {}: never managed by itself",
            ",".join(compose.own_services),
            compose.project_name,
        )
    store = Store(
        connect(settings.redis_url.get_secret_value()),
        Keys(settings.key_prefix, compose.project_name),
        settings.events_maxlen,
        settings.redis_call_attempts,
    )
    daemon = Daemon(
        settings, compose, store, docker_cmd=compose.docker_cmd(), files=tuple(compose.files)
    )
    # the handler only records the signal and wakes the reactor (no logging, no locks)
    on_signal = daemon.on_signal
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return daemon.run()
    except WatchLimitError as exc:
        logger.error("{}", exc)
        return 3


def cmd_status(
    settings: Settings, as_json: bool, watch: bool = False, interval: float = 2.0
) -> int:
    from sidecar.adapters.status import collect, render

    r = redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=5,
    )
    keys = _keys(settings)
    if watch:
        return _watch_status(r, keys, settings, as_json, max(0.1, interval))
    try:
        state = collect(r, keys)
    except redis.RedisError as exc:
        print(_unreadable(settings, exc), file=sys.stderr)
        return 2
    print(json.dumps(state, indent=2, sort_keys=True) if as_json else render(state))
    return 0 if state["alive"] else 1


def _unreadable(settings: Settings, exc: redis.RedisError) -> str:
    url = redact_url(settings.redis_url.get_secret_value())
    return f"sidecar: cannot read status from Redis at {url}: {exc}"


def _watch_status(
    r: redis.Redis, keys: Keys, settings: Settings, as_json: bool, interval: float
) -> int:
    """`status --watch`: a frame every `interval` until Ctrl-C (exit 0). With --json one
    document per line; a Redis that does not answer is a frame saying so."""
    from sidecar.adapters.status import collect, render, watch_frame

    tty = sys.stdout.isatty() and not as_json
    try:
        while True:
            try:
                state = collect(r, keys)
                text = json.dumps(state, sort_keys=True) if as_json else render(state)
            except redis.RedisError as exc:
                text = json.dumps({"error": str(exc)}) if as_json else _unreadable(settings, exc)
            sys.stdout.write(
                text + "\n" if as_json else watch_frame(text, tty, time.time(), interval)
            )
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def cmd_check(settings: Settings) -> int:
    from sidecar.adapters.status import verdict

    try:
        r = redis.Redis.from_url(
            settings.redis_url.get_secret_value(), socket_connect_timeout=2, socket_timeout=2
        )
        raw = r.get(_keys(settings).heartbeat)
    except redis.RedisError as exc:
        print(f"unhealthy: redis unreachable: {type(exc).__name__}", file=sys.stderr)
        return 1
    ok, message = verdict(cast("bytes | None", raw))
    print(message)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `sidecar events -f | head`: the reader went away. Quietly, as `cat` would: point
        # stdout at /dev/null so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"sidecar: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    identity = drop_root(settings.workspace) if settings.drop_root else None
    if args.command == "run":
        return cmd_run(settings, identity)
    # The client commands stop on Ctrl-C, also when started from a script in the background
    # (`cmd &` hands children SIGINT ignored, and Python then never raises KeyboardInterrupt:
    # `status --watch` could only be killed).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.command == "status":
        return cmd_status(settings, args.json, args.watch, args.interval)
    if args.command == "check":
        return cmd_check(settings)
    if args.command == "events":
        return cmd_events(settings, args.follow, args.count)
    return cmd_send(settings, _command_fields(args), args.timeout, args.quiet)


def _command_fields(args: argparse.Namespace) -> dict[str, str]:
    if args.command == "signal":
        return {"action": args.signal}
    fields = {"action": args.command}
    for name in ("service", "replicas", "instance"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = str(value)
    if args.command == "drift" and args.apply:
        fields["apply"] = "1"
    return fields


def _client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=10,
    )


def cmd_send(
    settings: Settings, fields: dict[str, str], timeout: float, quiet: bool = False
) -> int:
    """Write a command to the stream and wait for its result (exit 1 with the error). The
    verbs that start work (`progress.follows`) print its steps as they happen, unless quiet."""
    keys = _keys(settings)
    command_id = uuid.uuid4().hex
    try:
        r = _client(settings)
        follow = None
        if not quiet and progress.follows(fields["action"]):
            services = [fields["service"]] if "service" in fields else None
            follow = _Follow(r, keys, command_id, services)
        entry: dict[Any, Any] = {**fields, "id": command_id}
        r.xadd(keys.commands, entry)
        return _wait_result(r, keys, command_id, timeout, follow)
    except redis.RedisError as exc:
        print(
            f"sidecar: redis at {redact_url(settings.redis_url.get_secret_value())}: {exc}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            f"sidecar: interrupted; the daemon carries the command out all the same "
            f"(its result: GET {keys.result(command_id)})",
            file=sys.stderr,
        )
        return 130


# a result key while no answer came through the events stream (the event lost while Redis
# was away) is taken as the answer after this long
RESULT_WITHOUT_EVENT_S = 2.0


def _wait_result(
    r: redis.Redis, keys: Keys, command_id: str, timeout: float, follow: _Follow | None
) -> int:
    deadline = time.monotonic() + timeout
    result_since: float | None = None
    while time.monotonic() < deadline:
        if follow is not None and follow.poll(block_ms=100):
            return follow.report()
        raw = r.get(keys.result(command_id))
        if raw:
            result_since = result_since or time.monotonic()
            # once answers come as events (one per service of a redeploy of all), they count
            lost = follow is not None and not follow.answers
            if follow is None or (
                lost and time.monotonic() - result_since > RESULT_WITHOUT_EVENT_S
            ):
                result = json.loads(str(raw))
                print(result["message"], file=sys.stdout if result["ok"] else sys.stderr)
                return 0 if result["ok"] else 1
        if follow is None:
            time.sleep(0.05)
    print(
        f"sidecar: no result within {timeout:g}s (is the daemon running? `sidecar status`)",
        file=sys.stderr,
    )
    return 2


class _Follow:
    """Prints a command's steps as the daemon carries it out: the events stream from just
    before the command was written, and the services' instance tables, polled (what each
    becomes is decided in `sidecar.core.progress`)."""

    def __init__(
        self, r: redis.Redis, keys: Keys, command_id: str, services: list[str] | None
    ) -> None:
        self.r, self.keys, self.command_id = r, keys, command_id
        # no service: the command is about every service of the project
        self.services = services or sorted(str(s) for s in r.smembers(keys.services))
        newest: list[Any] = cast(list[Any], r.xrevrange(keys.events, count=1)) or []
        self.last = str(newest[0][0]) if newest else "0-0"
        self.tables = self._read_tables()
        self.answers: list[progress.Answer] = []
        self.width = max([len(s) for s in self.services] + [1])
        self.t0 = time.monotonic()

    def _read_tables(self) -> dict[str, dict[str, progress.Seen]]:
        pipe = self.r.pipeline(transaction=False)
        for name in self.services:
            pipe.hgetall(self.keys.instances(name))
        raw: list[dict[str, str]] = pipe.execute()
        return {name: progress.parse_table(t) for name, t in zip(self.services, raw, strict=True)}

    def poll(self, block_ms: int | None) -> bool:
        """Print what happened since the last poll; True once the command is answered."""
        resp: list[Any] = (
            cast(list[Any], self.r.xread({self.keys.events: self.last}, count=500, block=block_ms))
            or []
        )
        steps: list[progress.Step] = []
        done = False
        working = self.pending()  # the tables changed before this poll's answers came
        for _stream, entries in resp:
            for entry_id, fields in entries:
                if done:
                    break  # what follows the answer (the job's own bookkeeping) is not ours
                self.last = str(entry_id)
                answer = progress.answer_of(fields, self.command_id)
                if answer is not None:
                    self.answers.append(answer)
                    done = progress.finished(self.answers, self.services)
                    continue
                step = progress.event_step(
                    fields, self.pending(), self.command_id, self.keys.project
                )
                if step is not None:
                    steps.append(step)
        tables = self._read_tables()
        changes = [
            progress.table_steps(name, self.tables[name], tables[name], self.keys.project)
            for name in working
        ]
        self.tables = tables
        for step in progress.in_order(steps, *changes):
            print(progress.format_step(step, time.monotonic() - self.t0, self.width), flush=True)
        return done

    def pending(self) -> list[str]:
        """The services still at work: what comes after a service's answer (its job's own
        events) is not part of the command."""
        answered = {a.service for a in self.answers}
        return [name for name in self.services if name not in answered]

    def report(self) -> int:
        for text, ok in progress.final_lines(self.answers):
            print(text, file=sys.stdout if ok else sys.stderr, flush=True)
        return 0 if all(a.ok for a in self.answers) else 1


def cmd_events(settings: Settings, follow: bool, count: int) -> int:
    keys = _keys(settings)
    try:
        r = _client(settings)
        entries: list[Any] = cast(list[Any], r.xrevrange(keys.events, count=count)) or []
        last = "$"
        for entry_id, fields in reversed(entries):
            print(_event_line(str(entry_id), dict(fields)))
            last = str(entry_id)
        while follow:
            resp: list[Any] = cast(list[Any], r.xread({keys.events: last}, block=5000)) or []
            for _stream, new in resp:
                for entry_id, fields in new:
                    print(_event_line(str(entry_id), dict(fields)), flush=True)
                    last = str(entry_id)
    except redis.RedisError as exc:
        print(f"sidecar: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _event_line(entry_id: str, fields: dict[str, str]) -> str:
    at = float(fields.get("at", entry_id.split("-", maxsplit=1)[0]) or 0)
    stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"
    rest = " ".join(
        f"{k}={v!r}" if " " in v or not v else f"{k}={v}"
        for k, v in fields.items()
        if k not in ("event", "service", "at")
    )
    return f"{stamp} {fields.get('event', '?'):<18} {fields.get('service', '') or '-':<12} {rest}"


if __name__ == "__main__":
    sys.exit(main())
