"""Scaling and control through Redis commands and the CLI, against a running sidecar."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit.http import http_get
from testkit.sidecar import Sidecar, converged, start_served
from testkit.wait import free_port, wait_for
from testkit.workspace import Workspace
from tests.integration.conftest import SidecarFactory

FAST = {"rollout": {"proxy_settle": 0, "drain": 0}, "max_replicas": 4, "min_replicas": 1}


def cli(sc: Sidecar, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args, "--timeout", "60"],
        env=sc.env(),
        capture_output=True,
        text=True,
        check=False,
    )


def start(workspace: Workspace, sidecar: SidecarFactory, replicas: int = 1) -> Sidecar:
    return start_served(workspace, sidecar, replicas, **FAST)[0]


def test_scale_spawn_destroy_from_the_cli(workspace: Workspace, sidecar: SidecarFactory) -> None:
    sc = start(workspace, sidecar)
    out = cli(sc, "scale", "web", "3")
    assert out.returncode == 0, out.stderr
    assert converged(sc, "web", 3)
    assert cli(sc, "spawn", "web").returncode == 0
    assert converged(sc, "web", 4)
    refused = cli(sc, "spawn", "web")
    assert refused.returncode == 1 and "limit is 4" in refused.stderr
    victim = sc.ws.inspect(sc.ws.containers("web")[0])["Name"].lstrip("/")
    assert cli(sc, "destroy", "web", victim).returncode == 0
    assert converged(sc, "web", 3)
    assert victim not in {
        sc.ws.inspect(c).get("Name", "").lstrip("/") for c in sc.ws.containers("web")
    }
    assert sc.r.get(f"sidecar:{workspace.name}:desired:web") == "3"

    for args, message in [
        (("scale", "web", "-1"), "non-negative whole number"),
        (("scale", "web", "two"), "non-negative whole number"),
        (("scale", "web", "99"), "above the limit"),
        (("scale", "nosuch", "2"), "unknown service"),
        (("scale", "web", "0"), "below web's minimum"),
    ]:
        res = cli(sc, *args)
        assert res.returncode == 1 and message in res.stderr, (args, res.stderr)
    assert converged(sc, "web", 3), "rejected commands change nothing"

    # the scaled count survives a restart and a rebuild
    sc.stop()
    sc.start()
    workspace.write("web/www/index.html", "v1\n")
    wait_for(lambda: sc.events("build-succeeded", "web"), 60, "the rebuild")
    sc.settle()
    assert converged(sc, "web", 3)


def test_scale_recovered_from_containers_when_redis_was_emptied(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc = start(workspace, sidecar)
    assert cli(sc, "scale", "web", "2").returncode == 0
    sc.stop()
    sc.r.flushdb()
    sc.start()
    sc.settle()
    assert converged(sc, "web", 2), "2 running instances mean 2 were asked for"
    assert sc.r.get(f"sidecar:{workspace.name}:desired:web") == "2"


BAD_FIELDS: Any = st.one_of(
    st.fixed_dictionaries(
        {"action": st.binary(min_size=1, max_size=20).filter(lambda b: not b.isascii())}
    ),
    st.fixed_dictionaries({"action": st.sampled_from(["explode", "", "SCALE", "rm -rf /"])}),
    st.fixed_dictionaries(
        {
            "action": st.just("scale"),
            "service": st.just("web"),
            "replicas": st.sampled_from(["-1", "1.5", "1e3", "99999", "", "x"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "action": st.just("scale"),
            "service": st.text(alphabet="abcxyz;$`", min_size=1, max_size=8).filter(
                lambda s: s != "web"
            ),
            "replicas": st.just("2"),
        }
    ),
    st.fixed_dictionaries(
        {
            "action": st.just("scale"),
            "service": st.just("web"),
            "replicas": st.just("2"),
            "project": st.just("someone-else"),
        }
    ),
    st.fixed_dictionaries({"action": st.just("pause"), "service": st.just("w" * 300)}),
    st.fixed_dictionaries({"action": st.just("pause"), "nonsense": st.just("1")}),
)
GOOD_FIELDS: Any = st.one_of(
    st.fixed_dictionaries(
        {
            "action": st.just("scale"),
            "service": st.just("web"),
            "replicas": st.sampled_from(["1", "2", "3"]),
        }
    ),
    st.fixed_dictionaries(
        {"action": st.sampled_from(["pause", "resume"]), "service": st.just("web")}
    ),
)


def test_malformed_commands_never_hurt(workspace: Workspace, sidecar: SidecarFactory) -> None:
    sc = start(workspace, sidecar)

    @settings(
        max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        st.lists(
            st.tuples(st.booleans(), st.one_of(BAD_FIELDS, GOOD_FIELDS)), min_size=5, max_size=25
        )
    )
    def run(batch: list[tuple[bool, dict[str, Any]]]) -> None:
        sent = []
        for _, fields in batch:
            cid = uuid.uuid4().hex
            entry: dict[Any, Any] = {**fields, "id": cid}
            sc.r.xadd(f"sidecar:{workspace.name}:commands", entry)
            sent.append((cid, fields))
        results: dict[str, Any] = {}

        def answered() -> bool:
            for cid, _ in sent:
                raw = sc.r.get(f"sidecar:{workspace.name}:result:{cid}")
                if raw is None:
                    return False
                results[cid] = json.loads(str(raw))
            return True

        wait_for(answered, 90, "every command to get a result")
        assert sc.proc is not None and sc.proc.poll() is None, "the sidecar survived"
        for cid, fields in sent:
            assert results[cid]["ok"] is (fields in GOOD_EXAMPLES), (fields, results[cid])
            assert results[cid]["message"], "every result says what happened or why not"
        valid = [f for _, f in sent if f in GOOD_EXAMPLES]
        scales = [int(f["replicas"]) for f in valid if f["action"] == "scale"]
        pauses = [f["action"] == "pause" for f in valid if f["action"] != "scale"]
        expected_replicas = scales[-1] if scales else None
        expected_paused = pauses[-1] if pauses else None
        if expected_replicas is not None:
            wait_for(
                lambda: converged(sc, "web", expected_replicas),
                60,
                f"exactly {expected_replicas} as the last valid scale asked",
            )
        if expected_paused is not None:
            paused = sc.r.sismember(f"sidecar:{workspace.name}:paused", "web")
            assert bool(paused) is expected_paused

    run()


GOOD_EXAMPLES = [{"action": "scale", "service": "web", "replicas": n} for n in ("1", "2", "3")] + [
    {"action": a, "service": "web"} for a in ("pause", "resume")
]


def test_command_written_while_down_is_processed_once(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc = start(workspace, sidecar)
    sc.stop()
    stream = f"sidecar:{workspace.name}:commands"
    cmd: dict[Any, Any] = {"action": "scale", "service": "web", "replicas": "2", "id": "while-down"}
    sc.r.xadd(stream, cmd)
    sc.start()
    result = wait_for(
        lambda: sc.r.get(f"sidecar:{workspace.name}:result:while-down"),
        60,
        "the command written while the sidecar was down to be answered",
    )
    assert json.loads(str(result))["ok"] is True
    wait_for(lambda: converged(sc, "web", 2), 30, "2 instances")
    # a repeated delivery of the same id changes nothing and keeps the first result
    again: dict[Any, Any] = {
        "action": "scale",
        "service": "web",
        "replicas": "3",
        "id": "while-down",
    }
    sc.r.xadd(stream, again)
    wait_for(lambda: not sc.r.xpending(stream, "sidecar")["pending"], 20, "the repeat acked")
    sc.settle()
    assert converged(sc, "web", 2)
    assert json.loads(str(sc.r.get(f"sidecar:{workspace.name}:result:while-down")))["ok"]
    assert len(sc.events("command-ok")) == 1


def test_spawned_instances_get_distinct_ports_from_the_range(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    low = free_port()
    extra: dict[str, Any] = {
        "ports": [f"127.0.0.1:{low}-{low + 20}:8080"],
        "x-sidecar": {"port": 8080, "replicas": 1, "max_replicas": 5, **FAST},
    }
    workspace.add_service("web", None, "v0", False, **extra)
    workspace.write_compose()
    sc = sidecar(url_mode="host")
    sc.start()
    key = f"sidecar:{workspace.name}:rotation:web"
    wait_for(lambda: sc.r.llen(key) == 1, 30, "one instance")
    assert cli(sc, "spawn", "web").returncode == 0
    assert cli(sc, "spawn", "web").returncode == 0
    urls = [str(u) for u in sc.r.lrange(key, 0, -1)]
    ports = {int(u.rsplit(":", 1)[1]) for u in urls}
    assert len(ports) == 3 and all(low <= p <= low + 20 for p in ports), urls
    assert all(http_get(p) == "v0" for p in ports)
