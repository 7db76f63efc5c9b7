"""The CLI against the real daemon: `sidecar rebuild | redeploy | scale` print the steps of
the work as it happens, then the result; `sidecar status --watch` prints frames until
Ctrl-C. Run as a subprocess without a terminal, as in a CI log."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

from testkit.sidecar import Sidecar, converged, served, start_served
from testkit.wait import wait_for
from testkit.workspace import DOCKERFILE, Workspace
from tests.integration.conftest import SidecarFactory
from tests.integration.test_commands import cli

# a drain long enough for a 100 ms poll to see it (the rest of a rollout waits nothing)
SERVE = {"rollout": {"proxy_settle": 0, "drain": 0.5}, "max_replicas": 4}
ROLLED_OUT = "rolled out 2 new, retired 2"
STEP = re.compile(r"^\s*\d+\.\ds  web  (?P<text>.+)$")


def steps(out: str) -> tuple[list[str], list[str]]:
    """(the progress lines' texts, the lines after them: the result)."""
    lines = out.splitlines()
    texts = [m["text"] for m in map(STEP.match, lines) if m]
    assert not any(STEP.match(line) for line in lines[len(texts) :]), out
    assert [m["text"] for m in map(STEP.match, lines[: len(texts)]) if m] == texts, out
    return texts, lines[len(texts) :]


def at(texts: list[str], pattern: str) -> int:
    found = [i for i, t in enumerate(texts) if re.fullmatch(pattern, t)]
    assert len(found) == 1, (pattern, texts)
    return found[0]


def names(sc: Sidecar) -> set[str]:
    prefix = f"{sc.ws.name}-"
    return {
        sc.ws.inspect(c)["Name"].lstrip("/").removeprefix(prefix) for c in sc.ws.containers("web")
    }


def assert_replaced(texts: list[str], old: set[str], new: set[str]) -> None:
    """Every new instance started and joined, every old one left and was retired, in order,
    and the first new one served before the first old one left (start-first)."""
    assert len(old) == len(new) == 2 and not old & new, (old, new)
    for name in new:
        started = at(texts, rf"{name} started")
        assert started < at(texts, rf"{name} healthy, joined the rotation \(\d serving\)")
    for name in old:
        left = at(texts, rf"{name} left the rotation, draining \(\d serving\)")
        assert left < at(texts, rf"{name} retired")
    first_join = min(i for i, t in enumerate(texts) if "joined the rotation" in t)
    assert first_join < min(i for i, t in enumerate(texts) if "left the rotation" in t)


def ok_steps(sc: Sidecar, *args: str) -> tuple[list[str], list[str]]:
    """Run a command that must succeed: (its progress lines' texts, the result lines)."""
    out = cli(sc, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "\x1b" not in out.stdout, "no control codes without a terminal"
    return steps(out.stdout)


def served_web(workspace: Workspace, sidecar: SidecarFactory, replicas: int) -> Sidecar:
    sc = start_served(workspace, sidecar, replicas, **SERVE)[0]
    sc.settle()
    return sc


def test_redeploy_and_rebuild_print_each_step_before_the_result(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc = served_web(workspace, sidecar, 2)
    old = names(sc)
    texts, result = ok_steps(sc, "redeploy", "web")
    assert texts[0] == "rollout started (redeploy)", texts
    assert result == [ROLLED_OUT], (texts, result)
    assert_replaced(texts, old, names(sc))
    assert converged(sc, "web", 2)

    old = names(sc)
    texts, result = ok_steps(sc, "rebuild", "web")
    assert texts[0] == "build started (rebuild)", texts
    built = at(texts, r"built in \d+\.\ds")
    assert built < min(i for i, t in enumerate(texts) if re.fullmatch(r"web-\d+ started", t))
    assert result == [ROLLED_OUT], (texts, result)
    assert_replaced(texts, old, names(sc))

    assert ok_steps(sc, "redeploy", "web", "--quiet") == ([], [ROLLED_OUT])


def test_scale_prints_each_instance_started_joined_and_retired(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc = served_web(workspace, sidecar, 2)
    before = names(sc)
    texts, result = ok_steps(sc, "scale", "web", "3")
    (added,) = names(sc) - before
    assert texts == [
        "converge started (scale to 3)",
        f"{added} started",
        f"{added} healthy, joined the rotation (3 serving)",
    ], texts
    assert result == ["3/3 serving"], result
    assert converged(sc, "web", 3)

    texts, result = ok_steps(sc, "scale", "web", "2")
    (gone,) = (before | {added}) - names(sc)
    assert texts == [
        "converge started (scale to 2)",
        f"{gone} left the rotation, draining (2 serving)",
        f"{gone} retired",
    ], texts
    assert result == ["2/2 serving"], result

    refused = cli(sc, "scale", "web", "9")
    assert refused.returncode == 1 and "above the limit" in refused.stderr, refused.stderr
    assert steps(refused.stdout) == ([], []), "a refused command has no steps"


def test_a_redeploy_of_every_service_waits_for_each_and_says_each_result(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    served(workspace, "web", 2, **SERVE)
    workspace.add_service("api", publish=False)  # a plain service: recreated, not rolled out
    workspace.write_compose()
    sc = sidecar()
    sc.start()
    wait_for(lambda: converged(sc, "web", 2), 30, "2 instances serving")
    sc.settle()
    out = cli(sc, "signal", "redeploy")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    # one result per service, each when its job is done; nothing of a service after its own
    api, web = sorted(lines[-2:])
    assert api.startswith("api: ") and web == f"web: {ROLLED_OUT}", out.stdout
    assert not any("deployed" in x for x in lines), "the job's bookkeeping after its answer"
    assert any(re.match(r"^\s*\d+\.\ds  api  compose up started \(redeploy\)$", x) for x in lines)
    assert any(re.match(r"^\s*\d+\.\ds  web  rollout started \(redeploy\)$", x) for x in lines)
    assert sum("joined the rotation" in x for x in lines) == 2, out.stdout


def test_a_failed_rollout_says_which_instance_and_why_then_the_error(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc = start_served(workspace, sidecar, 2, **SERVE, health={"start_timeout": 2})[0]
    sc.settle()
    assert cli(sc, "pause", "web").returncode == 0  # the edit is built by the command only
    # the new version listens on the wrong port: it never passes its health check
    workspace.write("web/Dockerfile", DOCKERFILE.replace('"8080"', '"9999"'))
    out = cli(sc, "rebuild", "web")
    assert out.returncode == 1, out.stdout + out.stderr
    texts, result = steps(out.stdout)
    assert result == [], "the error goes to stderr"
    assert texts[:2] == ["build started (rebuild)", texts[1]] and texts[1].startswith("built in")
    (new,) = {t.split()[0] for t in texts[2:]}
    assert texts[2] == f"{new} started", texts
    assert texts[3].startswith(f"{new} unhealthy: not healthy within 2s (last probe: "), texts
    assert texts[4:] == [f"{new} removed before joining"], texts
    assert "rollout paused" in out.stderr, out.stderr
    assert converged(sc, "web", 2), "the old instances keep serving"


def test_status_watch_prints_frames_until_ctrl_c(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    sc = start_served(workspace, sidecar, 1, **SERVE)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "status", "--watch", "--interval", "0.2"],
        env=sc.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "\x1b" not in out, "no control codes without a terminal"
    frames = re.split(r"^--- \d\d:\d\d:\d\d ---$\n", out, flags=re.MULTILINE)
    assert frames[0] == "" and len(frames) - 1 >= 4, out
    for frame in frames[1:-1]:  # the last may be cut short by the Ctrl-C
        assert frame.startswith(f"project {workspace.name}: daemon alive"), frame
        assert re.search(r"^web\s", frame, flags=re.MULTILINE), frame


def test_a_reader_that_goes_away_ends_the_cli_quietly(
    workspace: Workspace, sidecar: SidecarFactory
) -> None:
    """`sidecar status --watch | head -3` printed a BrokenPipeError traceback."""
    sc = start_served(workspace, sidecar, 1, **SERVE)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "status", "--watch", "--interval", "0.1"],
        env=sc.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert first.startswith(b"--- "), first
    proc.stdout.close()  # as `head` does once it has its lines
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=10) == 128 + signal.SIGPIPE, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
