"""Commands from Redis, executed by the reactor: validated by `commands`, their effects
decided by `core.effects`, turned into jobs or immediate actions, answered with a result key
and an event, then acknowledged.

Control keeps its own state (replica overrides set by commands, the paused set, commands
awaiting the job that carries them out) and reaches the reactor only through `Host`, a
Protocol the daemon satisfies: no import of the daemon, no cycle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol, TypeVar

from loguru import logger

from sidecar.core.commands import Action, Command, CommandError, Limits, parse_command
from sidecar.core.effects import ALL, PauseState, destroy_pick, replica_counts, replica_target
from sidecar.core.model import Project, ServiceSpec
from sidecar.core.planner import JobQueue, Kind
from sidecar.core.ports import Clock, DockerPort, StorePort
from sidecar.core.types import Incoming, Instance, JobDone
from sidecar.core.versions import Version, rollback_reason, rollback_target, version_tag
from sidecar.runtime.sources import Sources
from sidecar.settings import Settings

T = TypeVar("T")


class Host(Protocol):
    """What Control needs of the reactor that runs it."""

    project: Project
    jobs: JobQueue
    sources: Sources
    store: StorePort
    compose: DockerPort
    settings: Settings
    clock: Clock

    def safe(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None: ...
    def safe_docker(self, fn: Callable[[], T], default: T) -> T: ...
    def event(self, kind: str, service: str = "", **fields: object) -> None: ...
    def reload_project(self) -> None: ...
    def act_on_pending(self, name: str, when: str) -> None: ...
    def unpark_syncs(self) -> None: ...
    def request_stop(self) -> None: ...
    def cancel_all_builds(self) -> None: ...
    def check_drift(
        self, apply: bool, entry_id: str = "", command: Command | None = None
    ) -> None: ...


@dataclass(frozen=True)
class Awaiting:
    entry_id: str
    command: Command
    since: float  # wall time the command was accepted: a job that started later answers it


class Control:
    """Owned by the reactor and run on its thread; `d` is that reactor."""

    def __init__(self, host: Host) -> None:
        self.d = host
        self.desired: dict[str, int] = {}
        self.pauses = PauseState()
        self.awaiting: dict[str, list[Awaiting]] = {}
        self.retire_first: dict[str, str] = {}
        # service -> the version a rollback returns to (its deploy records that commit)
        self.rollbacks: dict[str, Version] = {}

    # --- the effective definition --------------------------------------------------------
    def effective(self, name: str) -> ServiceSpec | None:
        """The service as the jobs must see it: with a command's replica count, if any."""
        svc = self.d.project.services.get(name)
        if svc is None or not svc.served or name not in self.desired:
            return svc
        return replace(svc, replicas=self.desired[name])

    def is_paused(self, name: str) -> bool:
        return self.pauses.is_paused(name)

    def load_state(self, adopt_running: bool) -> None:
        """Replica overrides and the paused set as Redis kept them (a restart forgets
        neither)."""
        members = self.d.safe(self.d.store.paused_members)
        self.pauses = PauseState.from_members(members or set())
        served = [s.name for s in self.d.project.services.values() if s.served]
        self.desired = self.d.safe(self.d.store.all_desired, served) or {}
        if not adopt_running:
            return
        # Redis lost our state: more running containers than declared say a scale-out was
        # asked for. Fewer do not say a scale-in was: a plain `docker compose up` of the
        # project starts one container per service before the sidecar scales it.
        for name in served:
            empty: list[Instance] = []
            found = self.d.safe_docker(partial(self.d.compose.instances, name), empty)
            count = sum(1 for i in found if i.state == "running")
            if count > self.d.project.services[name].replicas:
                self.desired[name] = count
                self.d.safe(self.d.store.set_desired, name, count)
                logger.info("{}: replicas {} recovered from the running containers", name, count)

    def republish(self) -> None:
        """Redis came back empty: write our part of the state again."""
        for svc, replicas in self.desired.items():
            self.d.safe(self.d.store.set_desired, svc, replicas)
        self.d.safe(self.d.store.set_paused_members, self.pauses.members())

    def forget_desired(self, name: str) -> None:
        if self.desired.pop(name, None) is not None:
            self.d.safe(self.d.store.set_desired, name, None)

    # --- incoming ------------------------------------------------------------------------
    def on_command(self, msg: Incoming) -> None:
        counts = self._counts()
        limits = Limits(
            self.d.settings.max_replicas,
            {
                n: s.serve.max_replicas
                for n, s in self.d.project.services.items()
                if s.serve and s.serve.max_replicas
            },
            {n: s.serve.min_replicas for n, s in self.d.project.services.items() if s.serve},
        )
        try:
            cmd = parse_command(msg.entry_id, msg.fields, self.d.project, limits, counts)
        except CommandError as exc:
            self._answer(msg.entry_id, _fallback_id(msg), False, str(exc), None, _known_action(msg))
            return
        if self.d.safe(self.d.store.command_result, cmd.id):
            # a repeated delivery: the first result stands, nothing is done twice
            logger.info("command {} already answered: acknowledging the repeat", cmd.id)
            self.d.safe(self.d.store.ack_command, msg.entry_id)
            return
        try:
            self._execute_command(msg.entry_id, cmd, counts)
        except CommandError as exc:
            self._answer(msg.entry_id, cmd.id, False, str(exc), cmd)

    def _counts(self) -> dict[str, int]:
        """Replicas each served service has now (declared or commanded)."""
        services = self.d.project.services
        served = [n for n, s in services.items() if s.served]
        return replica_counts({n: services[n].replicas for n in served}, self.desired, served)

    def _execute_command(self, entry_id: str, cmd: Command, counts: dict[str, int]) -> None:
        svc = cmd.service
        if cmd.action in (Action.SCALE, Action.SPAWN, Action.DESTROY):
            assert svc is not None
            target = replica_target(cmd.action, counts[svc], cmd.replicas)
            if cmd.instance:
                found = self.d.safe_docker(partial(self.d.compose.instances, svc), None)
                if found is None:
                    raise CommandError(f"docker is unavailable: cannot look up {cmd.instance}")
                pick = destroy_pick(svc, [i.name for i in found], cmd.instance)
                assert pick is not None
                self.retire_first[svc] = pick
            self.desired[svc] = target
            self.d.safe(self.d.store.set_desired, svc, target)
            self._await(entry_id, cmd, Kind.CONVERGE, f"command {cmd.id}: {cmd.action} to {target}")
        elif cmd.action is Action.REBUILD:
            assert svc is not None
            self.d.sources.take_all(svc)
            self._await(entry_id, cmd, Kind.BUILD, f"command {cmd.id}: rebuild")
        elif cmd.action is Action.DRIFT:
            self.d.check_drift(cmd.apply, entry_id, cmd)  # answered when the check is done
        elif cmd.action is Action.ROLLBACK:
            assert svc is not None
            self._rollback(entry_id, cmd, svc)
        elif cmd.action is Action.REDEPLOY:
            for name in [svc] if svc else list(self.d.project.services):
                kind = redeploy_kind(self.d.project.services[name])
                self._await(
                    entry_id, replace(cmd, service=name), kind, f"command {cmd.id}: redeploy"
                )
        else:
            self._immediate(entry_id, cmd)

    def _rollback(self, entry_id: str, cmd: Command, name: str) -> None:
        """Point the service's image name at its previous good version's image (kept by a
        version tag) and roll that out: no build, served services without downtime."""
        spec = self.d.project.services[name]
        versions = self.d.safe(self.d.store.versions, name)
        if versions is None:
            raise CommandError("redis is unavailable: the versions cannot be read")
        current = self.d.safe_docker(partial(self.d.compose.image_id, spec), "")
        kept = self.d.settings.images_kept
        target = rollback_target(versions, current, kept)
        if target is None:
            raise CommandError(
                f"{name} has no earlier version to roll back to (images of the {kept} newest "
                "versions are kept: images_kept)"
            )
        tags = self.d.safe_docker(partial(self.d.compose.image_tags, spec), None)
        if tags is None or version_tag(target.version) not in tags:
            raise CommandError(f"the image of {name} v{target.version} is no longer kept")
        try:
            self.d.compose.point_image(spec, target.image)
        except Exception as exc:  # noqa: BLE001 - docker's errors are the command's answer
            raise CommandError(f"docker could not restore v{target.version}: {exc}") from None
        self.rollbacks[name] = target
        kind = Kind.ROLLOUT if spec.served else Kind.UP
        self._await(entry_id, cmd, kind, f"command {cmd.id}: {rollback_reason(target)}")

    def _immediate(self, entry_id: str, cmd: Command) -> None:
        target = cmd.service or ALL
        if cmd.action in (Action.PAUSE, Action.RESUME):
            was = self.pauses
            pause = cmd.action is Action.PAUSE
            self.pauses = was.pause(target) if pause else was.resume(target)
            self.d.safe(self.d.store.set_paused_members, self.pauses.members())
            if not pause:
                for name in self.d.sources.pending():
                    if was.is_paused(name) and not self.is_paused(name):
                        # what changed while paused gets built (or synced) now
                        self.d.act_on_pending(name, "while paused")
            self._answer(entry_id, cmd.id, True, self.pauses.describe(target), cmd)
        elif cmd.action is Action.RELOAD:
            self.d.reload_project()
            self._answer(entry_id, cmd.id, True, "project re-read", cmd)
        elif cmd.action in (Action.QUIT, Action.STOP):
            if cmd.action is Action.STOP:
                self.d.cancel_all_builds()  # no grace: in-flight builds are cancelled now
            self._answer(entry_id, cmd.id, True, f"{cmd.action}: stopping", cmd)
            self.d.request_stop()

    def _await(self, entry_id: str, cmd: Command, kind: Kind, reason: str) -> None:
        assert cmd.service is not None
        self.awaiting.setdefault(cmd.service, []).append(
            Awaiting(entry_id, cmd, self.d.clock.time())
        )
        self.d.jobs.request(cmd.service, reason, kind)

    # --- results -------------------------------------------------------------------------
    def answer_awaiting(self, done: JobDone) -> None:
        """A job finished: it answers the commands accepted before it started (a develop.watch
        sync carries out no command)."""
        if done.kind is Kind.SYNC:
            return
        waiting = self.awaiting.get(done.service, [])
        answered = [a for a in waiting if a.since <= done.started]
        self.awaiting[done.service] = [a for a in waiting if a.since > done.started]
        step = done.deploy or done.build
        detail = step.tail if step is not None else ""
        for a in answered:
            message = detail.splitlines()[-1] if done.ok and detail else detail[-500:]
            self._answer(a.entry_id, a.command.id, done.ok, message or done.kind.value, a.command)

    def answer_drift(self, entry_id: str, cmd: Command, ok: bool, message: str) -> None:
        self._answer(entry_id, cmd.id, ok, message, cmd)

    def _answer(
        self,
        entry_id: str,
        command_id: str,
        ok: bool,
        message: str,
        cmd: Command | None,
        action: str = "",
    ) -> None:
        service = (cmd.service or "") if cmd else ""
        action = cmd.action.value if cmd else action
        result = {
            "id": command_id,
            "ok": ok,
            "message": message,
            "at": round(self.d.clock.time(), 3),
            "action": action,
            "service": service,
        }
        (logger.info if ok else logger.warning)(
            "command {} {}: {}", command_id, "done" if ok else "rejected", message
        )
        self.d.safe(
            self.d.store.finish_command, entry_id, command_id, result, self.d.settings.result_ttl_s
        )
        self.d.event(
            "command-ok" if ok else "command-error",
            service,
            command=command_id,
            action=action,
            message=message,
        )


def _known_action(msg: Incoming) -> str:
    """A refused command's action when it names one (results and metrics say which kind of
    command was refused); '' for anything else, so no caller-made text becomes a label."""
    raw = msg.fields.get(b"action")
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else ""
    return text if text in {a.value for a in Action} else ""


def _fallback_id(msg: Incoming) -> str:
    """The caller's id if it is readable and well-formed, else the stream entry id."""
    raw = msg.fields.get(b"id")
    try:
        text = raw.decode() if isinstance(raw, bytes) else ""
    except UnicodeDecodeError:
        text = ""
    ok = 0 < len(text) <= 128 and all(c.isalnum() or c in "_.:-" for c in text)
    return text if ok else msg.entry_id


def redeploy_kind(spec: ServiceSpec) -> Kind:
    """A redeploy of a built service rolls out (served) or recreates (plain) its current
    image; one of an image-only service pulls first and rolls out only what changed."""
    if not spec.built:
        return Kind.PULL
    return Kind.ROLLOUT if spec.served else Kind.UP
