"""Image-only services through the reactor: a redeploy pulls, and rolls out only when the
registry had a newer image; a failed pull touches nothing."""

from __future__ import annotations

import json

from sidecar.core.types import ImagePushed
from tests.reactor.conftest import World


def test_a_redeploy_pulls_and_rolls_out_a_newer_image(world: World) -> None:
    world.pulled("web", replicas=2)
    world.start()
    before = {i.id for i in world.docker.running("web")}
    versions = len(world.store.version_records.get("web", []))
    world.docker.pushed.add("web")  # the registry has a newer image
    result = world.command(action="redeploy", service="web", id="r1")
    assert result["ok"], result
    after = {i.id for i in world.docker.running("web")}
    assert len(after) == 2 and not after & before, "every instance replaced"
    assert world.store.rotations["web"] and len(world.store.rotations["web"]) == 2
    assert ("pull", "web") in world.docker.calls
    assert len(world.store.version_records["web"]) == versions + 1
    assert world.store.kinds("web")[-3:] == ["pulled", "deployed", "job-finished"]


def test_a_pull_of_what_runs_rolls_out_nothing_and_makes_no_version(world: World) -> None:
    world.pulled("web", replicas=2)
    world.start()
    before = {i.id for i in world.docker.running("web")}
    versions = len(world.store.version_records.get("web", []))
    result = world.command(action="redeploy", service="web", id="r2")
    assert result["ok"] and "nothing to roll out" in result["message"], result
    assert {i.id for i in world.docker.running("web")} == before
    assert len(world.store.version_records.get("web", [])) == versions
    pulled = [e for e in world.store.events if e["kind"] == "pulled"]
    assert pulled and pulled[-1]["changed"] == "0"


def test_a_failed_pull_is_reported_and_touches_nothing(world: World) -> None:
    world.pulled("web", replicas=2)
    world.start()
    before = {i.id for i in world.docker.running("web")}
    world.docker.failing_pulls.add("web")
    world.docker.pushed.add("web")
    result = world.command(action="redeploy", service="web", id="r3")
    assert not result["ok"] and "connection refused" in result["message"], result
    assert {i.id for i in world.docker.running("web")} == before
    assert "pull-failed" in world.store.kinds("web")
    assert len(world.store.rotations["web"]) == 2


def test_a_registry_push_pulls_exactly_the_services_that_run_that_image(world: World) -> None:
    world.pulled("web", replicas=2)
    world.pulled("api", replicas=1)
    world.services["api"]["image"] = "127.0.0.1:5000/api:v1"
    world.built("shop")  # built here: a push never pulls it
    world.start()
    web, api = {i.id for i in world.docker.running("web")}, world.docker.running("api")
    world.docker.pushed |= {"web", "api"}
    world.d.queue.put(ImagePushed("127.0.0.1:5000/web:latest", "sha256:" + "a" * 64, "registry"))
    world.d.queue.put(ImagePushed("127.0.0.1:5000/api:v2", "sha256:" + "b" * 64, "registry"))
    world.d.queue.put(ImagePushed("docker.io/library/web:latest", "", "dockerhub"))
    world.settle()
    assert [c for c in world.docker.calls if c[0] == "pull"] == [("pull", "web")]
    assert not {i.id for i in world.docker.running("web")} & web, "web rolled out"
    assert world.docker.running("api") == api, "api runs v1, the push was v2: untouched"
    started = [e for e in world.store.events if e["kind"] == "pull-started"]
    assert [e["reason"][:46] for e in started] == ["registry push of 127.0.0.1:5000/web:latest (sh"]


D_OLD, D_NEW = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def drifting(world: World) -> None:
    """web runs D_OLD, the registry has D_NEW for its tag; api is up to date."""
    world.pulled("web", replicas=2)
    world.pulled("api", replicas=1)
    world.start()
    world.docker.pulled_digest.update(web=D_OLD, api=D_OLD)
    world.registries.tags[("127.0.0.1:5000", "web", "latest")] = D_NEW
    world.registries.tags[("127.0.0.1:5000", "api", "latest")] = D_OLD
    world.docker.pushed.add("web")
    world.docker.registry_digest["web"] = D_NEW


def run_drift(world: World, **fields: str) -> dict[str, object]:
    """A drift command, its check run inline (the drift thread's work), then settled."""
    world.d._drift_pool.shutdown(wait=True)
    world.d._drift_pool = InlinePool()  # type: ignore[assignment]
    return world.command(action="drift", id=f"d{len(world.store.events)}", **fields)


class InlinePool:
    def submit(self, fn: object) -> None:
        fn()  # type: ignore[operator]

    def shutdown(self, **_: object) -> None:
        pass


def test_drift_reports_without_apply_and_pulls_only_the_drifted_with_it(world: World) -> None:
    drifting(world)
    web = {i.id for i in world.docker.running("web")}
    result = run_drift(world)
    assert result["ok"], result
    assert "web drifted (registry has sha256:222222222222" in str(result["message"])
    assert "api ok (up to date)" in str(result["message"])
    assert {i.id for i in world.docker.running("web")} == web, "no apply: nothing touched"
    assert json.loads(world.store.drift["web"])["drifted"] is True
    result = run_drift(world, apply="1")
    assert result["ok"] and "1 pulled" in str(result["message"]), result
    world.settle()
    assert not {i.id for i in world.docker.running("web")} & web, "web rolled out"
    assert [c for c in world.docker.calls if c[0] == "pull"] == [("pull", "web")]
    assert "drifted" not in str(run_drift(world)["message"]).split("checked:")[1]


def test_a_registry_that_is_down_drifts_nothing_and_says_so(world: World) -> None:
    drifting(world)
    world.registries.down = True
    result = run_drift(world, apply="1")
    assert result["ok"] and "registry unreachable" in str(result["message"]), result
    world.settle()
    assert not [c for c in world.docker.calls if c[0] == "pull"]


def test_the_periodic_check_applies(world: World) -> None:
    world.settings = world.settings.model_copy(update={"drift_interval_s": 60.0})
    drifting(world)
    world.d._drift_pool.shutdown(wait=True)
    world.d._drift_pool = InlinePool()  # type: ignore[assignment]
    world.d._next_drift = world.clock.monotonic()
    web = {i.id for i in world.docker.running("web")}
    world.settle()
    assert not {i.id for i in world.docker.running("web")} & web
    assert world.registries.heads, "HEAD requests only"


def test_the_loop_wakes_for_the_periodic_check_not_only_for_the_heartbeat(world: World) -> None:
    """With a 5 s interval the checks ran every 6 s: the wait ignored the drift's due time."""
    world.settings = world.settings.model_copy(
        update={"drift_interval_s": 0.5, "heartbeat_interval_s": 30.0}
    )
    world.pulled("web", replicas=1)
    world.start()
    world.settle()
    world.d._next_drift = world.clock.monotonic() + 0.5
    assert world.d._timeout() <= 0.5
