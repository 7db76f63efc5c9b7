"""bench.failover's analysis on recorded trials: the figures a reader of the benchmark checks.

`failover_trials.json` is two trials of a real run (`python -m bench.failover --trials 1
--record F`): a `docker kill` with the sidecar's retry middleware (one request hung on the
killed instance's address until the client's timeout) and a `docker stop` without it. Trimmed
to what the analysis reads: floats rounded to 0.1 ms, access-log lines that are neither the
victim's nor failed dropped, bodies other than the victim's blanked. The expected figures are
the ones that run printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.failover.analyse import analyse_trial, summary, throttle_hold
from bench.failover.report import report

TRIALS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "failover_trials.json").read_text()
)
KILL, STOP = TRIALS


def test_kill_with_retry_figures() -> None:
    t = analyse_trial(KILL)
    assert (t["action"], t["retry_attempts"], t["stable"], t["disturbed"]) == ("kill", 2, True, "")
    assert t["first_event"] == "kill signal=9"
    a, b = t["paths"]["a"], t["paths"]["b"]
    assert (a["failed"], b["failed"]) == (1, 3)
    assert a["failed_kinds"] == {"TimeoutError": 1}
    assert b["failed_kinds"] == {"502": 2, "TimeoutError": 1}
    assert a["requests"] == b["requests"] == 259
    assert t["redis"]["removed_s"] == pytest.approx(0.0088, abs=2e-4)
    assert t["redis"]["listed_before"] is True
    assert KILL["victim_url"] not in t["redis"]["list_after_removal"]
    assert a["last_routed_to_victim_s"] == pytest.approx(0.125, abs=1e-3)
    assert b["last_routed_to_victim_s"] == pytest.approx(0.228, abs=1e-3)
    assert t["die_s"] == pytest.approx(0.079, abs=1e-3)
    assert t["replacement_start_s"] == pytest.approx(0.797, abs=1e-3)
    assert t["throttle_exposure"]["a_hold_s"] == t["throttle_exposure"]["b_hold_s"] == 0.0


def test_stop_without_retry_figures() -> None:
    t = analyse_trial(STOP)
    assert (t["action"], t["retry_attempts"]) == ("stop", 0)
    assert t["first_event"] == "kill signal=15"
    a, b = t["paths"]["a"], t["paths"]["b"]
    assert (a["failed"], b["failed"]) == (1, 43)
    assert a["failed_kinds"] == {"502": 1}
    # the Docker provider routes to the stopping instance until its `die`, 3 s later, and the
    # replacement took its address over by then
    assert t["die_s"] == pytest.approx(3.036, abs=1e-3)
    assert b["routed_until_replacement_took_address"] is True
    assert a["routed_until_replacement_took_address"] is False
    assert t["redis"]["removed_s"] == pytest.approx(0.0044, abs=2e-4)


def test_summary_and_report_of_the_recorded_trials() -> None:
    kill, stop = analyse_trial(KILL), analyse_trial(STOP)
    results: dict[str, Any] = {
        "retry_2": {"kill": {"trials": [kill], "summary": summary([kill])}},
        "retry_0": {"stop": {"trials": [stop], "summary": summary([stop])}},
    }
    s = results["retry_2"]["kill"]["summary"]
    assert (s["trials"], s["paths"]["a"]["failed_total"], s["paths"]["b"]["failed_total"]) == (
        1,
        1,
        3,
    )
    assert s["redis_removal_confirmed"] == 1
    text, targets = report(results, [2, 0], trials=1)
    assert "(a) sidecar, retry 2" in text and "(a) sidecar, no retry" in text
    assert targets["failed_a_le_b_kill_retry_2"] is True
    assert targets["failed_a_lt_b_stop_retry_0"] is True
    # one failure, and too few trials: the retry target is missed
    assert targets["zero_failed_kill_retry_2"] is False
    assert "0 failed requests (a) over >= 10 trials (kill, retry 2): 1 in 1 trials" in text
    json.dumps(results)  # the figures are plain data


def test_a_disturbed_trial_is_named() -> None:
    other = next(c for c in KILL["ids"] if c != KILL["victim"])
    rec = dict(KILL)
    event = {"at": KILL["t_action"] + 1, "action": "die", "container": other, "attrs": {}}
    rec["docker_events"] = [*KILL["docker_events"], event]
    t = analyse_trial(rec)
    assert t["disturbed"] == f"instances other than the victim ended: {other[:12]}"
    assert summary([t])["trials"] == 0


@pytest.mark.parametrize(
    ("triggers", "at", "hold"),
    [
        ([], 10.0, 0.0),  # nothing sent before: at once
        ([9.0], 10.0, 1.0),  # the slot of the message at 9 s ends at 11 s
        ([7.0], 10.0, 0.0),
        ([8.5, 9.0], 10.0, 0.5),  # both wait for 10.5 s; then the latest goes out
        ([7.0, 8.0], 10.0, 1.0),  # 8 s was held until 9 s, and that took the slot to 11 s
        ([5.0, 6.0, 6.5], 10.0, 0.0),  # the held one went out at 7 s, its slot ended at 9 s
    ],
)
def test_throttle_model(triggers: list[float], at: float, hold: float) -> None:
    assert throttle_hold(triggers, at) == pytest.approx(hold)
