"""Docker events through the reactor: instant rotation removal, replacement, crash loops."""

from __future__ import annotations

from tests.reactor.conftest import World


def _serving(world: World, replicas: int = 3) -> list[str]:
    world.served("web", replicas=replicas)
    world.start()
    ids = [i.id for i in world.docker.running("web")]
    assert len(world.rotation("web")) == replicas
    return ids


def test_a_killed_instance_leaves_at_once_and_is_replaced(world: World) -> None:
    ids = _serving(world)
    victim = ids[0]
    url = f"http://{next(iter(world.docker.containers[victim].ips.values()))}:8080"
    world.event("kill", victim, "web", signal="9")
    # out of the rotation before the reactor even ran: the events thread did it
    assert url not in world.rotation("web")
    world.docker.set_state(victim, "exited")
    world.event("die", victim, "web", exit_code="137")
    world.settle()
    assert len(world.rotation("web")) == 3
    assert sorted(world.rotation("web")) == world.healthy_urls("web")
    assert victim not in world.docker.containers  # the leftover was removed
    assert "service-failed" not in world.store.kinds("web")  # a kill is no crash


def test_a_crash_loop_backs_off_then_marks_the_service_failed(world: World) -> None:
    world.settings.crash_max_failures = 2
    world.served("web", replicas=1)
    world.start()
    for _ in range(4):
        running = world.docker.running("web")
        if not running:
            break
        (inst,) = running
        world.docker.set_state(inst.id, "exited")
        world.event("die", inst.id, "web", exit_code="1")
        world.settle()
        world.clock.advance(60)
        world.settle()
    assert "service-failed" in world.store.kinds("web")
    assert world.store.builds["web"]["state"] == "failed"


def test_an_unhealthy_instance_leaves_and_a_healthy_one_returns(world: World) -> None:
    ids = _serving(world, replicas=2)
    world.event("health_status", ids[1], "web", status="unhealthy")
    assert len(world.rotation("web")) == 1
    world.event("health_status", ids[1], "web", status="healthy")
    world.settle()
    assert sorted(world.rotation("web")) == world.healthy_urls("web")
    assert len(world.rotation("web")) == 2


def test_events_of_other_services_and_plain_services_change_nothing(world: World) -> None:
    world.built("worker")
    world.served("web", replicas=1)
    world.start()
    calls = len(world.docker.calls)
    (inst,) = world.docker.running("worker")
    world.event("die", inst.id, "worker", exit_code="1")
    world.event("die", "f" * 64, "ghost", exit_code="1")
    world.settle()
    assert not [c for c in world.docker.calls[calls:] if c[0] in ("scale", "stop_remove", "up")]


def test_an_instance_taken_out_by_a_docker_event_is_reported_at_once(world: World) -> None:
    world.served("web", replicas=2)
    world.start()
    victim = world.docker.running("web")[0]
    world.event("kill", victim.id, "web", signal="9")  # the events thread's part only
    left = [e for e in world.store.events if e["kind"] == "instance-left"]
    assert [(e["instance"], e["on"]) for e in left] == [(victim.name, "kill")]
