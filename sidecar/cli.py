"""Command line: `sidecar run | status | check`. Flags mirror the settings fields (flags win
over `SIDECAR_*` environment variables)."""

from __future__ import annotations

import argparse
import json
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
    ):
        sub.add_parser(name, help=text).add_argument("service")
    for name, text in (
        ("pause", "stop reacting to file changes (one service or all)"),
        ("resume", "react to file changes again"),
    ):
        sub.add_parser(name, help=text).add_argument("service", nargs="?")
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
    for p in sub.choices.values():
        if p is not run:
            p.add_argument(
                "--timeout",
                type=float,
                default=300.0,
                help="seconds to wait for a command's result",
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


def cmd_status(settings: Settings, as_json: bool) -> int:
    from sidecar.adapters.status import collect, render

    r = redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=5,
    )
    try:
        state = collect(r, _keys(settings))
    except redis.RedisError as exc:
        print(
            f"sidecar: cannot read status from Redis at "
            f"{redact_url(settings.redis_url.get_secret_value())}: {exc}",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(state, indent=2, sort_keys=True) if as_json else render(state))
    return 0 if state["alive"] else 1


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
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ValidationError as exc:
        print(f"sidecar: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    identity = drop_root(settings.workspace) if settings.drop_root else None
    if args.command == "run":
        return cmd_run(settings, identity)
    if args.command == "status":
        return cmd_status(settings, args.json)
    if args.command == "check":
        return cmd_check(settings)
    if args.command == "events":
        return cmd_events(settings, args.follow, args.count)
    return cmd_send(settings, _command_fields(args), args.timeout)


def _command_fields(args: argparse.Namespace) -> dict[str, str]:
    if args.command == "signal":
        return {"action": args.signal}
    fields = {"action": args.command}
    for name in ("service", "replicas", "instance"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = str(value)
    return fields


def _client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=10,
    )


def cmd_send(settings: Settings, fields: dict[str, str], timeout: float) -> int:
    """Write a command to the stream and wait for its result (exit 1 with the error)."""
    keys = _keys(settings)
    command_id = uuid.uuid4().hex
    try:
        r = _client(settings)
        entry: dict[Any, Any] = {**fields, "id": command_id}
        r.xadd(keys.commands, entry)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = r.get(keys.result(command_id))
            if raw:
                result = json.loads(str(raw))
                print(result["message"], file=sys.stdout if result["ok"] else sys.stderr)
                return 0 if result["ok"] else 1
            time.sleep(0.05)
    except redis.RedisError as exc:
        print(
            f"sidecar: redis at {redact_url(settings.redis_url.get_secret_value())}: {exc}",
            file=sys.stderr,
        )
        return 2
    print(
        f"sidecar: no result within {timeout:g}s (is the daemon running? `sidecar status`)",
        file=sys.stderr,
    )
    return 2


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
