"""What a converge of a served service does, decided with no I/O.

A converge reaches the declared replica count and a rotation of exactly the healthy running
instances, replacing nothing that serves. Which unproven instance may join depends on a health
probe, so the decision comes in phases the deployer runs in order, each a pure function:

1. `leftovers`: dead/exited containers to remove before anything else;
2. `plan_converge`: members to unroute, who serves, who is a candidate, how many are needed;
3. `next_admission`, called after each probe: the next candidate to probe, or which
   candidates were admitted and which are surplus (never served: stopped);
4. `plan_converge_scale`: after admission, how many to start and which to retire;
5. `converge_changed`: whether any of it changed something worth reporting.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sidecar.core.planner import plan_scale
from sidecar.core.types import Instance

# the states an instance keeps in: anything else is a leftover (exited, created, dead)
_KEPT_STATES = ("running", "paused")


def leftovers(instances: Sequence[Instance]) -> list[str]:
    """Containers that are neither running nor paused. Removed first, because
    `compose up --scale` would restart them instead of starting new ones."""
    return [i.id for i in instances if i.state not in _KEPT_STATES]


def admissible(instances: Sequence[Instance], leaving: Collection[str]) -> list[Instance]:
    """The running instances that count as replicas, in Docker's order (oldest first). One
    that got a fatal kill/stop is on its way out even while it still runs: never admitted,
    not counted, so its replacement starts at once."""
    return [i for i in instances if i.state == "running" and i.id not in leaving]


@dataclass(frozen=True)
class ConvergePlan:
    """Phase 2 of a converge: the rotation fixed, the candidates for admission lined up."""

    replicas: int
    members: tuple[str, ...]  # the rotation as it was when the plan was made
    unroute: tuple[str, ...]  # members that no longer run (left with state "gone")
    paused: tuple[str, ...]  # out of the rotation but kept and counted
    serving: tuple[str, ...]  # running members: they stay
    candidates: tuple[str, ...]  # running, not members: admitted oldest first while needed
    names: Mapping[str, str]  # running instance id -> name (a `destroy` names one)

    @property
    def needed(self) -> int:
        """How many candidates may still join (zero or less: none)."""
        return self.replicas - len(self.serving) - len(self.paused)


def plan_converge(
    replicas: int,
    instances: Sequence[Instance],
    members: Mapping[str, str],
    leaving: Collection[str],
) -> ConvergePlan:
    """`instances` as Docker reports them (oldest first), `members` the rotation (container
    id -> URL), `leaving` the containers that got a fatal kill/stop/die."""
    running = admissible(instances, leaving)
    running_ids = {i.id for i in running}
    return ConvergePlan(
        replicas=replicas,
        members=tuple(members),
        unroute=tuple(cid for cid in members if cid not in running_ids),
        paused=tuple(i.id for i in instances if i.state == "paused"),
        serving=tuple(i.id for i in running if i.id in members),
        candidates=tuple(i.id for i in running if i.id not in members),
        names={i.id: i.name for i in running},
    )


@dataclass(frozen=True)
class Admission:
    """Phase 3: `probe` is the next candidate to health-check (None: admission is over);
    `admitted` joined the rotation, `surplus` is beyond the declared count (to be stopped,
    e.g. made by `compose up --scale` by hand). A candidate that failed its probe is in
    neither: the probe step already removed it."""

    probe: str | None
    admitted: tuple[str, ...] = ()
    surplus: tuple[str, ...] = ()


def next_admission(plan: ConvergePlan, probed: Mapping[str, bool]) -> Admission:
    """`probed`: candidate id -> joined (True) or failed its probe (False), so far."""
    admitted: list[str] = []
    surplus: list[str] = []
    for cid in plan.candidates:
        if len(admitted) >= plan.needed:
            surplus.append(cid)
        elif cid not in probed:
            return Admission(cid, tuple(admitted))
        elif probed[cid]:
            admitted.append(cid)
    return Admission(None, tuple(admitted), tuple(surplus))


@dataclass(frozen=True)
class ConvergeScale:
    """Phase 4: start `start` new instances, retire `retire` (through a drain)."""

    serving: tuple[str, ...]  # who serves before scaling, the one to retire first last
    start: int
    retire: tuple[str, ...]


def plan_converge_scale(
    plan: ConvergePlan, admitted: Sequence[str], retire_first: str | None
) -> ConvergeScale:
    """`retire_first`: the instance name a `destroy` command asked to go first. Paused
    instances come first in the count, so they are the last to be retired, and never by a
    converge (they are out of the rotation already; unpausing brings them back)."""
    serving = [*plan.serving, *admitted]
    first = [cid for cid in serving if plan.names.get(cid) == retire_first]
    serving = [cid for cid in serving if cid not in first] + first  # plan_scale retires the last
    batch = plan_scale([*plan.paused, *serving], plan.replicas)
    retire = tuple(cid for cid in batch.retire if cid not in plan.paused)
    return ConvergeScale(tuple(serving), batch.start, retire)


def converge_changed(
    plan: ConvergePlan, scale: ConvergeScale, surplus: Sequence[str], started: int, retired: int
) -> bool:
    """False when the converge found everything as declared: such converges stay out of the
    events stream. Removing dead leftovers alone does not count (Docker events report them)."""
    return bool(started or retired or surplus or set(plan.members) ^ set(scale.serving))


class Verdict(StrEnum):
    """What becomes of a probed instance."""

    JOIN = "join"
    STOPPING = "stopping"  # the sidecar is stopping: removed, it never served
    FAILED = "failed"  # unhealthy or unreachable: removed, reported with its logs


def admission_verdict(reason: str | None, cancelled: bool) -> Verdict:
    """`reason`: why the probe gave up, None when healthy."""
    if cancelled:
        # nobody would route to it, and a `compose down` that listed the containers before
        # it was made would leave it behind
        return Verdict.STOPPING
    return Verdict.JOIN if reason is None else Verdict.FAILED
