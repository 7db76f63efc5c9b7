"""Redis and Docker going away, lanes, signals: the reactor keeps its promises."""

from __future__ import annotations

import signal

from loguru import logger

from tests.reactor.conftest import World


def test_redis_away_then_back_empty_republishes_without_rebuilding(world: World) -> None:
    world.served("web", replicas=2)
    world.built("api")
    world.start()
    rotation = sorted(world.rotation("web"))
    world.store.down()
    world.clock.advance(world.settings.heartbeat_interval_s)
    world.settle()  # beats fail: running on
    assert world.store.available is False
    world.store.up(empty=True)  # restarted without persistence
    for _ in range(3):
        world.clock.advance(world.settings.heartbeat_interval_s)
        world.settle()
    assert sorted(world.rotation("web")) == rotation
    assert world.store.hashes["api"]  # the hash cache is rebuilt from disk
    assert "resynced" in world.store.kinds()
    assert world.builds("web") == world.builds("api") == 0


def test_an_edit_while_redis_is_away_is_built_and_committed_later(world: World) -> None:
    world.built("web")
    world.start()
    world.store.down()
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert world.builds("web") == 1  # the build does not wait for Redis
    world.store.up()
    world.clock.advance(world.settings.heartbeat_interval_s)
    world.settle()
    world.edit("web/www/index.html", "v2")  # the same bytes again: nothing new to build
    world.settle()
    assert world.builds("web") == 1


def test_two_slow_builds_do_not_delay_replacing_a_crashed_instance(world: World) -> None:
    """Bug: one worker pool ran every job; repairs now have their own lane."""
    world.built("a")
    world.built("b")
    world.served("web", replicas=2)
    world.start()
    world.work.hold = True  # the two builds take as long as the test wants
    world.edit("a/www/index.html", "v2")
    world.edit("b/www/index.html", "v2")
    world.settle()
    assert len(world.work.held) == 2
    victim = world.docker.running("web")[0].id
    world.docker.set_state(victim, "exited")
    world.event("die", victim, "web", exit_code="1")
    world.settle()
    assert len(world.rotation("web")) == 2  # replaced while both builds still run
    assert sorted(world.rotation("web")) == world.healthy_urls("web")
    world.work.release()
    world.settle()
    assert world.builds("a") == world.builds("b") == 1


def test_the_signal_handler_only_records_and_wakes(world: World) -> None:
    """Bug: the handler logged and called Queue.put (not reentrant) from signal context."""
    world.built("web")
    daemon = world.start()
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    try:
        daemon.on_signal(signal.SIGTERM)
        assert lines == []  # nothing logged inside the handler
        assert not daemon.stopping.is_set()
        daemon.run_steps()
        assert daemon.stopping.is_set()
        assert any("SIGTERM received" in line for line in lines)
    finally:
        logger.remove(sink)


def test_docker_away_at_a_periodic_resync_is_survived(world: World) -> None:
    world.served("web", replicas=2)
    world.start()
    rotation = sorted(world.rotation("web"))
    world.docker.away = True
    world.clock.advance(world.settings.resync_interval_s + 1)
    world.settle()
    assert sorted(world.rotation("web")) == rotation  # nothing serving was taken down
    world.docker.away = False
    world.clock.advance(world.settings.resync_interval_s + 1)
    world.settle()
    assert sorted(world.rotation("web")) == world.healthy_urls("web")
