"""develop.watch through the reactor: sync, delete, touch, restart, exec, initial_sync, new
replicas, rule changes, invalid rules. The fake containers hold what the sync put in them."""

from __future__ import annotations

from typing import Any

from sidecar.core.planner import Kind
from sidecar.runtime.daemon import Daemon, Paths
from tests.reactor.conftest import World

SYNC = {"action": "sync", "path": "./web/www", "target": "/www"}
REBUILD_DOCKERFILE = {"action": "rebuild", "path": "./web/Dockerfile"}


def watched(world: World, *rules: dict[str, Any], served: bool = False, **extra: Any) -> None:
    if served:
        world.served("web", replicas=2)
    else:
        world.built("web")
    world.services["web"].update(extra)
    world.services["web"]["develop"] = {"watch": list(rules or (SYNC, REBUILD_DOCKERFILE))}


def remove(world: World, rel: str) -> None:
    path = world.root / rel
    path.unlink()
    world.d.queue.put(Paths([str(path)]))


def new_rules(world: World, *rules: dict[str, Any]) -> None:
    """The compose file's develop.watch of web now says `rules`; the reactor reloads it."""
    world.services["web"]["develop"] = {"watch": list(rules)}
    world.docker.model = world.model()
    world.d.queue.put(Paths([str(world.root / "compose.yaml")]))
    world.settle()


def evs(world: World, kind: str) -> list[dict[str, str]]:
    """The service's events of one kind, fields as the Redis stream holds them (strings)."""
    return [
        {k: str(v) for k, v in e.items()}
        for e in world.store.events
        if e["kind"] == kind and e["service"] == "web"
    ]


def kinds(world: World) -> list[str]:
    return world.store.kinds("web")


def test_an_edit_under_a_sync_path_is_copied_into_the_container_without_a_build(
    world: World,
) -> None:
    watched(world)
    world.start()
    [inst] = world.docker.running("web")
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert world.docker.content(inst.id, "/www/index.html") == b"v2"
    assert world.builds("web") == 0
    assert [i.id for i in world.docker.running("web")] == [inst.id]  # no new container
    synced = evs(world, "synced")
    assert synced[-1]["files"] == "1" and synced[-1]["containers"] == "1"
    assert world.store.builds["web"]["last_sync_result"] == "ok"


def test_a_touch_or_same_bytes_sync_nothing(world: World) -> None:
    watched(world)
    world.start()
    copies = len(world.docker.copies)
    world.edit("web/www/index.html", "v1")  # the bytes the image has
    world.settle()
    assert len(world.docker.copies) == copies
    assert "synced" not in kinds(world) and "sync-started" not in kinds(world)


def test_every_replica_gets_one_tar_per_batch(world: World) -> None:
    watched(world, served=True)
    world.start()
    replicas = world.docker.running("web")
    assert len(replicas) == 2
    before = len(world.docker.copies)
    for n in range(30):
        world.edit(f"web/www/f{n}.txt", str(n))
    world.settle()
    copies = world.docker.copies[before:]
    assert sorted(c for c, _ in copies) == sorted(i.id for i in replicas)  # one each
    assert all(entries == 30 for _, entries in copies)
    for inst in replicas:
        assert world.docker.content(inst.id, "/www/f29.txt") == b"29"


def test_a_deleted_file_is_removed_from_every_container(world: World) -> None:
    watched(world, served=True)
    world.start()
    world.edit("web/www/old.html", "old")
    world.settle()
    remove(world, "web/www/old.html")
    world.settle()
    for inst in world.docker.running("web"):
        assert world.docker.content(inst.id, "/www/old.html") is None
        assert "/www/old.html" in world.docker.files[inst.id]  # deleted, not just unknown
    synced = evs(world, "synced")
    assert synced[-1]["deleted"] == "1"


def test_an_image_without_rm_falls_back_to_a_rebuild_and_says_so(world: World) -> None:
    watched(world)
    world.start()
    world.docker.no_rm.add("web")
    world.edit("web/www/old.html", "old")
    world.settle()
    assert world.builds("web") == 0
    remove(world, "web/www/old.html")
    world.settle()
    assert "sync-fallback" in kinds(world)
    assert world.builds("web") == 1  # the new image has no old.html
    assert world.store.builds["web"]["last_build_result"] == "ok"


def test_a_change_during_a_sync_queues_exactly_one_follow_up(world: World) -> None:
    watched(world)
    world.start()
    world.sync.hold = True
    world.edit("web/www/a.txt", "a")
    world.settle()
    assert world.d.jobs.running.get("web") is Kind.SYNC
    for n in range(5):
        world.edit(f"web/www/b{n}.txt", str(n))
        world.settle()
    assert world.d.jobs.followups["web"].kind is Kind.SYNC
    world.sync.hold = False
    world.sync.release()
    world.settle()
    world.sync.release()
    world.settle()
    [inst] = world.docker.running("web")
    assert evs(world, "synced")[-1]["files"] == "5"
    assert world.docker.content(inst.id, "/www/b4.txt") == b"4"
    assert sum(1 for k in kinds(world) if k == "synced") == 2


def test_sync_exec_runs_once_per_container_per_batch_and_a_failure_is_reported(
    world: World,
) -> None:
    rule = {**SYNC, "action": "sync+exec", "exec": {"command": ["reload", "now"]}}
    watched(world, rule, served=True)
    world.start()
    serving = sorted(world.rotation("web"))
    world.docker.exec_codes["reload"] = 3
    for n in range(4):
        world.edit(f"web/www/f{n}.txt", str(n))
    world.settle()
    runs = [c for c, cmd in world.docker.execs if cmd == ("reload", "now")]
    assert sorted(runs) == sorted(i.id for i in world.docker.running("web"))
    finished = evs(world, "exec-finished")
    assert len(finished) == 2 and {e["exit_code"] for e in finished} == {"3"}
    assert {e["result"] for e in finished} == {"failed"}
    assert sorted(world.rotation("web")) == serving  # nothing taken down


def test_sync_restart_restarts_served_instances_one_at_a_time_behind_the_rotation(
    world: World,
) -> None:
    rule = {**SYNC, "action": "sync+restart"}
    watched(world, rule, served=True)
    world.start()
    ids = sorted(i.id for i in world.docker.running("web"))
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert sorted(world.docker.restarts) == ids
    assert sorted(i.id for i in world.docker.running("web")) == ids  # same containers
    assert sorted(world.rotation("web")) == world.healthy_urls("web")
    assert "restarted" in kinds(world)


def test_a_restart_rule_restarts_a_plain_service_without_syncing(world: World) -> None:
    watched(world, {"action": "restart", "path": "./web/www"})
    world.start()
    [inst] = world.docker.running("web")
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert world.docker.restarts == [inst.id]
    assert world.docker.copies == []
    assert world.builds("web") == 0


def test_a_new_replica_from_scale_gets_the_synced_files_before_joining(world: World) -> None:
    watched(world, served=True)
    world.start()
    world.edit("web/www/index.html", "v2")
    world.settle()
    result = world.command(action="scale", service="web", replicas="3")
    assert result["ok"] is True
    running = world.docker.running("web")
    assert len(running) == 3
    for inst in running:
        assert world.docker.content(inst.id, "/www/index.html") == b"v2"
    assert len(world.rotation("web")) == 3


def test_initial_sync_brings_a_container_started_before_the_sidecar_up_to_date(
    world: World,
) -> None:
    watched(world, {**SYNC, "initial_sync": True})
    (world.root / "web" / "www").mkdir(parents=True, exist_ok=True)
    world.docker.model = world.model()
    early = world.docker._new("web")  # made by `docker compose up` before the sidecar
    world.start()
    assert [i.id for i in world.docker.running("web")] == [early.id]
    assert world.docker.content(early.id, "/www/index.html") == b"v1"


def test_a_restarted_sidecar_does_not_resync_unchanged_files(world: World) -> None:
    watched(world)
    world.start()
    world.edit("web/www/index.html", "v2")
    world.settle()
    copies = len(world.docker.copies)
    world.daemon = Daemon(
        world.settings,
        world.docker,
        world.store,
        clock=world.clock,
        executors=world.d.executors,
        prober=world.prober,
        files=(str(world.root / "compose.yaml"),),
    )
    world.d.start_up()
    world.settle()
    assert len(world.docker.copies) == copies
    assert world.builds("web") == 0  # the synced file is no reason to rebuild either


def test_an_invalid_rule_is_reported_and_changes_nothing(world: World) -> None:
    watched(world)
    world.start()
    [inst] = world.docker.running("web")
    new_rules(world, {"action": "sync+exec", "path": "./web/www", "target": "/www"})
    invalid = evs(world, "service-invalid")
    assert invalid and "develop.watch[0].exec.command" in invalid[-1]["error"]
    world.edit("web/www/index.html", "v2")  # the old rules still apply
    world.settle()
    assert world.docker.content(inst.id, "/www/index.html") == b"v2"
    assert [i.id for i in world.docker.running("web")] == [inst.id]


def test_a_rule_edited_in_the_compose_file_takes_effect_without_a_restart(world: World) -> None:
    watched(world, SYNC, {"action": "restart", "path": "./web/conf"})
    world.start()
    [inst] = world.docker.running("web")
    world.edit("web/www/index.html", "v2")
    world.edit("web/conf/app.ini", "x=1")
    world.settle()
    assert world.docker.restarts == [inst.id]
    new_rules(
        world,
        {"action": "sync", "path": "./web/www", "target": "/srv"},
        {"action": "restart", "path": "./web/conf"},
    )
    assert [i.id for i in world.docker.running("web")] == [inst.id]  # nothing recreated
    assert world.builds("web") == 0  # synced files are no build the reload owes
    assert world.docker.restarts == [inst.id]  # nor a second restart
    assert world.docker.content(inst.id, "/srv/index.html") == b"v2"  # the record moved too
    world.edit("web/www/index.html", "v3")
    world.settle()
    assert world.docker.content(inst.id, "/srv/index.html") == b"v3"


def test_a_sync_while_docker_is_away_is_retried_by_the_next_resync(world: World) -> None:
    watched(world)
    world.start()
    [inst] = world.docker.running("web")
    world.docker.away = True
    world.edit("web/www/index.html", "v2")
    world.settle()
    world.docker.away = False
    assert world.docker.content(inst.id, "/www/index.html") is None
    assert world.store.builds["web"]["last_sync_result"] == "failed"
    assert "DockerAway" in evs(world, "sync-failed")[-1]["error"]
    world.d.healing.resync("docker daemon reconnected", plain_too=True)
    world.settle()
    assert world.docker.content(inst.id, "/www/index.html") == b"v2"


def test_redis_restarted_empty_gets_the_sync_record_back(world: World) -> None:
    watched(world)
    world.start()
    world.edit("web/www/index.html", "v2")
    world.settle()
    recorded = dict(world.store.synced["web"])
    world.store.up(empty=True)  # restarted without persistence
    world.clock.advance(world.settings.heartbeat_interval_s + 0.1)
    world.settle()
    assert world.store.synced["web"] == recorded
