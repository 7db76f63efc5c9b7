"""What the CLI prints while its command is carried out (sidecar.core.progress), and the
frames of `sidecar status --watch`: tables of plain data."""

from __future__ import annotations

import json

import pytest

from sidecar.adapters.status import watch_frame
from sidecar.core.progress import (
    Answer,
    Seen,
    Step,
    answer_of,
    event_step,
    final_lines,
    finished,
    follows,
    format_step,
    in_order,
    parse_table,
    short_name,
    table_steps,
)

P = "proj"
CMD = "c0ffee"


def rows(**states: str) -> dict[str, Seen]:
    """`a="serving"` -> container `a`, named `proj-web-a`, since its position."""
    return {cid: Seen(f"{P}-web-{cid}", st, float(n)) for n, (cid, st) in enumerate(states.items())}


@pytest.mark.parametrize(
    ("before", "after", "lines"),
    [
        ({}, {}, []),
        (rows(a="serving"), rows(a="serving"), []),
        # a rollout's steps, each seen
        ({}, rows(c="starting"), ["web-c started"]),
        (rows(c="starting"), rows(c="serving"), ["web-c healthy, joined the rotation (1 serving)"]),
        (rows(a="serving"), rows(a="draining"), ["web-a left the rotation, draining (0 serving)"]),
        (rows(a="draining"), {}, ["web-a retired"]),
        # a short state missed between two polls: every step in between is said
        (
            {},
            rows(c="serving"),
            ["web-c started", "web-c healthy, joined the rotation (1 serving)"],
        ),
        (rows(a="serving"), {}, ["web-a left the rotation, retired (0 serving)"]),
        # a new instance that never became healthy
        (rows(c="starting"), {}, ["web-c removed before joining"]),
        # stopping mid-drain puts it back; a restart probes it again
        (rows(a="draining"), rows(a="serving"), ["web-a back in the rotation (1 serving)"]),
        (rows(a="draining"), rows(a="starting"), ["web-a restarted"]),
        # a state this table does not know is said as it is
        (rows(a="serving"), rows(a="paused"), ["web-a paused"]),
    ],
)
def test_instance_table_changes_become_lines(
    before: dict[str, Seen], after: dict[str, Seen], lines: list[str]
) -> None:
    assert [s.text for s in table_steps("web", before, after, P)] == lines


def test_a_batch_of_changes_is_told_in_order_with_the_count_after_each() -> None:
    before = {"a": Seen(f"{P}-web-1", "serving", 1.0), "b": Seen(f"{P}-web-2", "serving", 1.0)}
    after = {
        "b": Seen(f"{P}-web-2", "serving", 1.0),
        "a": Seen(f"{P}-web-1", "draining", 5.0),  # left after web-3 joined
        "c": Seen(f"{P}-web-3", "serving", 4.0),
    }
    assert [s.text for s in table_steps("web", before, after, P)] == [
        "web-3 started",
        "web-3 healthy, joined the rotation (3 serving)",
        "web-1 left the rotation, draining (2 serving)",
    ]


def test_a_renamed_row_keeps_the_name_it_was_first_seen_with() -> None:
    before = {"abc123": Seen(f"{P}-web-1", "draining", 1.0)}
    after = {"abc123": Seen("abc123", "serving", 2.0)}  # restored rows carry the id as name
    assert [s.text for s in table_steps("web", before, after, P)] == [
        "web-1 back in the rotation (1 serving)"
    ]


def test_parse_table_reads_the_daemons_json_and_skips_what_it_cannot() -> None:
    raw = {
        "a": json.dumps({"name": "proj-web-1", "state": "serving", "url": "u", "since": "3.5"}),
        "b": json.dumps({"name": "proj-web-2", "state": "gone", "since": "1"}),
        "c": "not json",
        "d": json.dumps(["a list"]),
        "e": json.dumps({"state": "starting"}),
    }
    assert parse_table(raw) == {
        "a": Seen("proj-web-1", "serving", 3.5),
        "e": Seen("e", "starting", 0.0),
    }


@pytest.mark.parametrize(
    ("name", "short"),
    [("proj-web-3", "web-3"), ("other-web-3", "other-web-3"), ("proj-", "proj-"), ("", "")],
)
def test_short_name_drops_the_project(name: str, short: str) -> None:
    assert short_name(name, P) == short


def ev(kind: str, service: str = "web", **fields: str) -> dict[str, str]:
    return {"event": kind, "service": service, "at": "10.5", **fields}


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        (ev("build-started", reason=f"command {CMD}: rebuild"), "build started (rebuild)"),
        (ev("rollout-started", reason=f"command {CMD}: redeploy"), "rollout started (redeploy)"),
        (
            ev("converge-started", reason=f"command {CMD}: scale to 3"),
            "converge started (scale to 3)",
        ),
        (ev("up-started", reason=f"command {CMD}: redeploy"), "compose up started (redeploy)"),
        # another cause keeps its reason (a file change while the command waits)
        (ev("build-started", reason="2 files changed"), "build started (2 files changed)"),
        (ev("sync-started", files="3"), None),
        (ev("built", seconds="12.345"), "built in 12.3s"),
        (ev("built", seconds="soon"), "built in ?s"),
        (ev("build-succeeded", seconds="2"), "build succeeded in 2.0s"),
        (ev("build-failed", error="step 1\nstep 2: boom\n"), "build failed: step 2: boom"),
        (ev("deploy-failed", error=""), "deploy failed"),
        (ev("build-failed", error="boom", seconds="3.21"), "build failed after 3.2s: boom"),
        (ev("deploy-failed", seconds="40"), "deploy failed after 40.0s"),
        (ev("build-cancelled"), "build cancelled"),
        (ev("pulled", seconds="1.25", changed="1"), "pulled in 1.2s: a new image"),
        (ev("pulled", seconds="0.5", changed="0"), "pulled in 0.5s: the image running already"),
        (ev("pull-failed", error="x\nconnection refused"), "pull failed: connection refused"),
        (ev("deployed", seconds="4", detail="2/2 serving"), "deployed in 4.0s: 2/2 serving"),
        (
            ev("instance-unhealthy", instance=f"{P}-web-3", error="503 from /healthz", logs="x"),
            "web-3 unhealthy: 503 from /healthz",
        ),
        (ev("instance-died", instance=f"{P}-web-3", error="exited"), "web-3 died: exited"),
        (
            ev("instance-start-failed", error="port taken"),
            "new instances did not start: port taken",
        ),
        (
            ev("synced", instance=f"{P}-web-3", files="4", reason="new"),
            "web-3 caught up on 4 synced files",
        ),
        (ev("synced", files="4"), None),  # an ordinary develop.watch sync
        (ev("converged", reason="docker die of web-2"), "repaired (docker die of web-2)"),
        (ev("service-failed", error="crash loop"), "service failed: crash loop"),
        (ev("docker-disconnected", "", error="EOF"), "docker disconnected: EOF"),
        (ev("docker-reconnected", ""), "docker reconnected"),
        (ev("stopped", ""), "the sidecar stopped"),
        # bookkeeping, other services, the answer: nothing
        (ev("job-finished", job="build", result="ok"), None),
        (ev("build-started", "api", reason="x"), None),
        (ev("command-ok", command=CMD, message="ok"), None),
        (ev("project-reloaded", ""), None),
        ({"event": "built"}, "built in 0.0s"),
    ],
)
def test_events_become_lines(fields: dict[str, str], line: str | None) -> None:
    step = event_step(fields, ["web"], CMD, P)
    assert (step.text if step else None) == line


def test_event_lines_carry_their_service_and_time() -> None:
    assert event_step(ev("built", seconds="1"), ["web"], CMD, P) == Step(
        "web", "built in 1.0s", 10.5
    )
    assert event_step(ev("stopped", ""), ["web"], CMD, P) == Step("-", "the sidecar stopped", 10.5)


def test_lines_of_a_poll_are_merged_by_time() -> None:
    events = [Step("web", "web-3 unhealthy: x", 2.0)]
    table = [Step("web", "web-3 started", 1.0), Step("web", "web-3 removed", float("inf"))]
    assert [s.text for s in in_order(events, table)] == [
        "web-3 started",
        "web-3 unhealthy: x",
        "web-3 removed",
    ]


@pytest.mark.parametrize(
    ("fields", "answer"),
    [
        (ev("command-ok", command=CMD, message="3/3 serving"), Answer("web", True, "3/3 serving")),
        (ev("command-error", command=CMD, message="no"), Answer("web", False, "no")),
        (ev("command-ok", command="someone-else", message="x"), None),
        (ev("deployed", command=CMD), None),
    ],
)
def test_the_answer_is_the_commands_own_result_event(
    fields: dict[str, str], answer: Answer | None
) -> None:
    assert answer_of(fields, CMD) == answer


OK_WEB, OK_API = Answer("web", True, "ok"), Answer("api", True, "ok")


@pytest.mark.parametrize(
    ("answers", "expected", "done"),
    [
        ([], ["web"], False),
        ([OK_WEB], ["web"], True),
        ([Answer("web", False, "build failed")], ["web"], True),
        # a redeploy of every service: each answers the same id
        ([OK_WEB], ["api", "web"], False),
        ([OK_WEB, OK_API], ["api", "web"], True),
        # refused before any service was picked (no service, or an unknown one)
        ([Answer("", False, "unknown field")], ["api", "web"], True),
        ([Answer("nosuch", False, "unknown service")], ["web"], True),
    ],
)
def test_what_counts_as_done(answers: list[Answer], expected: list[str], done: bool) -> None:
    assert finished(answers, expected) is done


def test_final_lines_are_the_message_alone_for_one_service() -> None:
    assert final_lines([OK_WEB]) == [("ok", True)]
    assert final_lines([OK_WEB, Answer("api", False, "boom")]) == [
        ("web: ok", True),
        ("api: boom", False),
    ]


@pytest.mark.parametrize(
    ("action", "followed"),
    [
        ("scale", True),
        ("spawn", True),
        ("destroy", True),
        ("rebuild", True),
        ("redeploy", True),
        ("pause", False),
        ("reload", False),
        ("quit", False),
    ],
)
def test_which_verbs_follow(action: str, followed: bool) -> None:
    assert follows(action) is followed


def test_format_step_is_plain_text_with_elapsed_seconds_and_service() -> None:
    line = format_step(Step("web", "web-3 started"), 1.25, 5)
    assert line == "   1.2s  web    web-3 started"
    assert "\x1b" not in line


def test_watch_frames_without_a_terminal_are_plain_text_after_a_separator() -> None:
    frame = watch_frame("project p: daemon alive\nSERVICE", False, 0.0, 2)
    assert "\x1b" not in frame
    first, *rest = frame.splitlines()
    assert first.startswith("--- ") and first.endswith(" ---")
    assert rest == ["project p: daemon alive", "SERVICE"]


def test_watch_frames_on_a_terminal_redraw_in_place() -> None:
    frame = watch_frame("line one\nline two", True, 0.0, 0.5)
    assert frame.startswith("\x1b[H") and frame.endswith("\x1b[J")
    lines = frame.removeprefix("\x1b[H").removesuffix("\x1b[J").split("\n")
    assert lines[0].startswith("every 0.5s, ") and lines[0].endswith("(Ctrl-C to stop)\x1b[K")
    assert lines[2:] == ["line one\x1b[K", "line two\x1b[K", ""]
