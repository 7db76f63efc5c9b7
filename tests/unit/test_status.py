"""`sidecar status` renders what a user checks: running vs serving instances, image, build."""

from __future__ import annotations

import time

from sidecar.adapters.status import render


def _state(**web: object) -> dict[str, object]:
    return {
        "project": "demo",
        "heartbeat": {"pid": 7, "host": "box"},
        "project_info": {},
        "services": {"web": web},
    }


def _row(text: str, service: str) -> list[str]:
    header, *rows = text.splitlines()[1:]
    cols = header.split()
    row = next(r for r in rows if r.startswith(service)).split()
    return [f"{c}={v}" for c, v in zip(cols, row, strict=False)]


def test_running_counts_live_states_and_serving_counts_the_rotation() -> None:
    text = render(
        _state(
            served="1",
            image="demo-web",
            context="/w/web",
            files="3",
            desired="3",
            last_build_at=str(time.time() - 5),
            last_build_result="ok",
            last_build_duration="0.5",
            instances={"serving": 2, "starting": 1, "die": 1},
            rotation=["http://a:80", "http://b:80"],
        )
    )
    assert "daemon alive (pid 7 on box)" in text
    row = _row(text, "web")
    assert "IMAGE=demo-web" in row
    assert "DESIRED=3" in row
    assert "RUNNING=3" in row
    assert "SERVING=2" in row


def test_dead_daemon_and_failed_build_are_visible() -> None:
    state = _state(context="/w/web", last_build_result="failed", last_build_error="x\nstep 2 boom")
    state["heartbeat"] = None
    text = render(state)
    assert "NOT RUNNING" in text
    assert "web: last build failed:" in text and "step 2 boom" in text


def test_last_sync_is_shown_per_service() -> None:
    text = render(
        _state(
            context="/w/web",
            last_sync_at=str(time.time() - 3),
            last_sync_result="failed",
            last_sync_files="12",
            last_sync_seconds="0.04",
            last_sync_error="web-1: APIError: no such container",
        )
    )
    assert "web: last sync 3s ago: failed, 12 files in 0.04s: web-1: APIError" in text
    assert "last sync" not in render(_state(context="/w/web"))
