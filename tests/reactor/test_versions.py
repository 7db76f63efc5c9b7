"""Deployed versions and metrics through the reactor: every deploy numbered in the store
before its `deployed` event, scaling numbered only when the image changed, the numbers kept
across Redis losing its data; every event counted in the metrics."""

from __future__ import annotations

from sidecar.core.versions import KEPT
from tests.reactor.conftest import World


def numbers(world: World, service: str) -> list[int]:
    return [v.version for v in world.store.version_records.get(service, [])]


def test_each_deploy_gets_the_next_version_with_its_image(world: World) -> None:
    world.served("web", replicas=2)
    world.start(images=False)  # no image yet: built at start-up
    assert numbers(world, "web") == [1]
    first = world.store.version_records["web"][0]
    assert first.image == "sha256:web-1"
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert numbers(world, "web") == [1, 2]
    second = world.store.version_records["web"][-1]
    assert second.image == "sha256:web-2" and second.reason.startswith("1 files changed")
    assert second.at > 0
    result = world.command(action="redeploy", service="web", id="r1")
    assert result["ok"], result
    assert numbers(world, "web") == [1, 2, 3]  # the same image, deployed again


def test_scaling_and_repairs_make_no_version(world: World) -> None:
    world.served("web", replicas=2)
    world.start()
    before = numbers(world, "web")
    assert world.command(action="scale", service="web", replicas="3", id="s1")["ok"]
    victim = world.docker.running("web")[0].id
    world.docker.set_state(victim, "exited")
    world.event("die", victim, "web", exit_code="1")
    world.settle()
    assert len(world.docker.running("web")) == 3  # replaced
    assert numbers(world, "web") == before


def test_the_record_is_written_before_the_deployed_event(world: World) -> None:
    world.served("web", replicas=1)
    world.start()
    seen: list[list[int]] = []
    event = world.store.event

    def spy(kind: str, service: str = "", **fields: object) -> None:
        if kind == "deployed":
            seen.append(numbers(world, service))
        event(kind, service, **fields)

    world.store.event = spy  # type: ignore[method-assign]
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert seen == [[1, 2]]


def test_a_plain_service_is_versioned_at_start_up_once(world: World) -> None:
    world.built("api")
    world.start()
    assert numbers(world, "api") == [1]
    world.edit("api/www/index.html", "v2")
    world.settle()
    assert numbers(world, "api") == [1, 2]


def test_only_the_newest_versions_are_kept(world: World) -> None:
    world.served("web", replicas=1)
    world.start()
    for n in range(KEPT + 3):
        world.edit("web/www/index.html", f"v{n + 10}")
        world.settle()
    kept = numbers(world, "web")
    assert len(kept) == KEPT and kept[-1] == KEPT + 4


def test_numbers_survive_redis_losing_its_data(world: World) -> None:
    world.served("web", replicas=1)
    world.start()
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert numbers(world, "web") == [1, 2]
    world.store.down()
    world.clock.advance(world.settings.heartbeat_interval_s)
    world.settle()
    world.store.up(empty=True)
    for _ in range(3):
        world.clock.advance(world.settings.heartbeat_interval_s)
        world.settle()
    assert numbers(world, "web") == [2]  # the newest, re-published
    world.edit("web/www/index.html", "v3")
    world.settle()
    assert numbers(world, "web") == [2, 3]


def test_a_restarted_daemon_continues_the_numbering(world: World) -> None:
    world.served("web", replicas=1)
    world.start()
    world.edit("web/www/index.html", "v2")
    world.settle()
    world.start()  # a new reactor on the same store and Docker
    assert numbers(world, "web") == [1, 2]  # same image: the start-up converge makes none
    world.edit("web/www/index.html", "v3")
    world.settle()
    assert numbers(world, "web") == [1, 2, 3]


def test_events_are_counted_in_the_metrics(world: World) -> None:
    world.served("web", replicas=2)
    world.start()
    world.edit("web/www/index.html", "v2")
    world.settle()
    world.command(action="scale", service="web", replicas="99", id="bad")
    text = world.d.metrics.exposition().decode()
    assert 'sidecar_builds_total{result="ok",service="web"} 1.0' in text
    assert 'sidecar_commands_total{action="scale",result="error"} 1.0' in text
    assert 'sidecar_rotation_size{service="web"} 2.0' in text
    assert 'sidecar_instances{service="web",state="serving"} 2.0' in text
    assert "sidecar_redis_up 1.0" in text
    assert "sidecar_job_queue_depth 0.0" in text


def test_a_pushed_build_records_its_digest_and_a_failed_push_changes_nothing(
    world: World,
) -> None:
    world.served("web", replicas=1)
    world.services["web"]["x-sidecar"]["push"] = "127.0.0.1:5000/web"
    world.start()
    world.edit("web/www/index.html", "v2")
    world.settle()
    target, digest = world.docker.pushed_to[-1]
    assert target == "127.0.0.1:5000/web"
    assert world.store.version_records["web"][-1].digest == digest
    assert "pushed" in world.store.kinds("web")
    world.docker.failing_pushes.add("web")
    before = numbers(world, "web")
    world.edit("web/www/index.html", "v3")
    world.settle()
    assert numbers(world, "web") == [*before, before[-1] + 1], "deployed all the same"
    assert world.store.version_records["web"][-1].digest == ""
    failed = [e for e in world.store.events if e["kind"] == "push-failed"]
    assert failed and "denied" in failed[-1]["error"]
