"""Commands through the reactor: results, pause/resume, scale, and Docker going away."""

from __future__ import annotations

from sidecar.runtime.daemon import Daemon
from tests.reactor.conftest import World


def test_scale_reaches_the_count_and_answers_ok(world: World) -> None:
    world.served("web", replicas=1)
    world.start()
    result = world.command(id="c1", action="scale", service="web", replicas="3")
    assert result["ok"] is True, result
    assert len(world.rotation("web")) == 3
    assert world.store.desired["web"] == 3
    assert world.store.acked  # acknowledged after the result was written


def test_a_bad_command_gets_an_error_result(world: World) -> None:
    world.served("web", replicas=1)
    world.start()
    result = world.command(id="c2", action="scale", service="nope", replicas="3")
    assert result["ok"] is False
    assert "nope" in result["message"]
    assert len(world.rotation("web")) == 1


def test_resume_one_service_after_pause_all_follows_it(world: World) -> None:
    """Bug: `pause` (all) then `resume web` answered 'followed' while web stayed paused."""
    world.built("web")
    world.built("api")
    world.start()
    assert world.command(id="p", action="pause")["ok"]
    result = world.command(id="r", action="resume", service="web")
    assert result["message"] == "file changes of web are followed"
    world.edit("web/www/index.html", "v2")
    world.edit("api/www/index.html", "v2")
    world.settle()
    assert world.builds("web") == 1
    assert world.builds("api") == 0  # everything else stays paused


def test_the_paused_set_survives_a_restart(world: World) -> None:
    """Bug: the paused set was written to Redis but never read back."""
    world.built("web")
    world.start()
    assert world.command(id="p", action="pause", service="web")["ok"]
    world.daemon = None
    world.start()  # a new daemon on the same Redis
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert world.builds("web") == 0
    assert world.command(id="r", action="resume", service="web")["ok"]
    world.settle()
    assert world.builds("web") == 1  # what changed while paused is built on resume


def test_destroy_of_a_named_instance_with_docker_away_is_an_error_not_a_crash(
    world: World,
) -> None:
    """Bug: an unguarded Docker call in control stopped the reactor when Docker was away."""
    world.served("web", replicas=2)
    world.start()
    name = world.docker.running("web")[0].name
    world.docker.away = True
    result = world.command(id="d1", action="destroy", service="web", instance=name)
    assert result["ok"] is False
    assert "docker is unavailable" in result["message"]
    world.docker.away = False
    result = world.command(id="d2", action="destroy", service="web", instance=name)
    assert result["ok"] is True, result
    assert name not in {i.name for i in world.docker.running("web")}
    assert len(world.rotation("web")) == 1


def test_a_message_that_raises_is_reported_and_the_reactor_goes_on(world: World) -> None:
    world.built("web")
    daemon: Daemon = world.start()

    def boom(_msg: object) -> None:
        raise RuntimeError("a bug in a handler")

    daemon.control.on_command = boom  # type: ignore[method-assign,assignment]
    world.store.add_command(id="x", action="reload")
    from sidecar.core.types import Incoming

    daemon.queue.put(Incoming("99-0", {b"action": b"reload"}))
    world.settle()
    assert "reactor-error" in world.store.kinds()
    world.edit("web/www/index.html", "v2")
    world.settle()
    assert world.builds("web") == 1  # still following
