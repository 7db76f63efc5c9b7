"""File changes through the reactor: what is built, what is not, what a failure leaves."""

from __future__ import annotations

from tests.reactor.conftest import World


def test_an_edit_builds_and_recreates_only_its_service(world: World) -> None:
    world.built("web")
    world.built("api")
    world.start()
    before = {i.id for i in world.docker.running("web")}
    api = {i.id for i in world.docker.running("api")}
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert world.builds("web") == 1
    assert world.builds("api") == 0
    assert {i.id for i in world.docker.running("web")}.isdisjoint(before)  # recreated
    assert {i.id for i in world.docker.running("api")} == api  # untouched
    assert world.store.builds["web"]["last_build_result"] == "ok"
    assert "build-succeeded" in world.store.kinds("web")


def test_same_bytes_build_nothing(world: World) -> None:
    world.built("web")
    world.start()
    world.edit("web/www/index.html", "v1")  # a save of the same bytes
    world.settle()
    assert world.builds("web") == 0


def test_a_failed_build_keeps_the_container_and_retries_on_the_next_edit(world: World) -> None:
    world.built("web")
    world.start()
    running = [i.id for i in world.docker.running("web")]
    world.docker.failing_builds.add("web")
    world.edit("web/www/index.html", "broken")
    world.settle()
    assert [i.id for i in world.docker.running("web")] == running
    assert world.store.builds["web"]["last_build_result"] == "failed"
    assert "build-failed" in world.store.kinds("web")
    world.docker.failing_builds.clear()
    world.edit("web/www/index.html", "fixed")
    world.settle()
    assert world.store.builds["web"]["last_build_result"] == "ok"
    assert world.builds("web") == 2


def test_a_burst_of_edits_is_one_build(world: World) -> None:
    world.built("web")
    world.start()
    for n in range(50):
        world.edit(f"web/www/f{n}.txt", str(n))
    world.settle()
    assert world.builds("web") == 1


def test_a_served_edit_rolls_out_behind_the_rotation(world: World) -> None:
    world.served("web", replicas=2)
    world.start()
    old = set(world.rotation("web"))
    assert len(old) == 2
    world.edit("web/www/index.html", "v2")
    world.settle()
    new = world.rotation("web")
    assert len(new) == 2 and old.isdisjoint(new)
    assert sorted(new) == world.healthy_urls("web")  # rotation == the running instances


def test_a_served_service_publishes_its_retry_with_the_rotation(world: World) -> None:
    world.served("web", replicas=1)
    world.served("api", replicas=1, retry={"attempts": 0})
    world.start()
    web, api = world.store.retries["web"], world.store.retries["api"]
    assert web is not None and web.attempts == 2  # the default
    assert api is not None and api.attempts == 0  # off, as the compose file says


def test_a_recreated_plain_service_has_its_neighbour_entries_forgotten(world: World) -> None:
    world.built("web")
    world.start()
    flushed: list[list[str]] = []
    world.d.runner.recreated = flushed.append
    world.edit("web/www/index.html", "v2")
    world.settle()
    [inst] = world.docker.running("web")
    assert flushed == [list(inst.ips.values())]  # the new container's address, once
