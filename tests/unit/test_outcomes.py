"""What a finished job records and reports (sidecar.core.outcomes): a table."""

from __future__ import annotations

import pytest

from sidecar.core.outcomes import job_outcome
from sidecar.core.planner import Kind
from sidecar.core.types import CommandResult, JobDone

OK = CommandResult(True, 0.5, "built\nok")
FAIL = CommandResult(False, 0.2, "step 2: RUN false\nerror")
CANCELLED = CommandResult(False, 0.1, "killed", cancelled=True)
QUIET_OK = CommandResult(True, 0.1, "2/2 serving", changed=False)
REPAIRED = CommandResult(True, 0.1, "2/2 serving", changed=True)


def job(
    kind: Kind, build: CommandResult | None, deploy: CommandResult | None, quiet: bool = False
) -> JobDone:
    return JobDone("web", kind, build, deploy, {"a": "d1"}, "files changed", 100.0, quiet)


@pytest.mark.parametrize(
    ("done", "stopping", "result", "commit", "kinds"),
    [
        (
            job(Kind.BUILD, OK, OK),
            False,
            "ok",
            True,
            ["build-succeeded", "deployed", "job-finished"],
        ),
        (job(Kind.BUILD, FAIL, None), False, "failed", False, ["build-failed", "job-finished"]),
        (job(Kind.BUILD, OK, FAIL), False, "failed", False, ["deploy-failed", "job-finished"]),
        (
            job(Kind.BUILD, CANCELLED, None),
            True,
            "cancelled",
            False,
            ["build-cancelled", "job-finished"],
        ),
        # a build that passed, then the stop came before the deploy
        (job(Kind.BUILD, OK, None), True, "cancelled", False, ["deploy-cancelled", "job-finished"]),
        (job(Kind.ROLLOUT, None, OK), False, None, False, ["deployed", "job-finished"]),
        (job(Kind.CONVERGE, None, QUIET_OK, quiet=True), False, None, False, []),
        (
            job(Kind.CONVERGE, None, REPAIRED, quiet=True),
            False,
            None,
            False,
            ["deployed", "converged"],
        ),
        (
            job(Kind.CONVERGE, None, FAIL, quiet=True),
            False,
            None,
            False,
            ["deploy-failed", "converged"],
        ),
    ],
)
def test_job_outcome(
    done: JobDone, stopping: bool, result: str | None, commit: bool, kinds: list[str]
) -> None:
    out = job_outcome(done, stopping, known=True)
    assert [k for k, _ in out.events] == kinds
    assert out.commit is commit
    if result is None:
        assert out.build_fields is None
    else:
        assert out.build_fields is not None
        assert out.build_fields["last_build_result"] == result
        if result == "ok":
            assert out.build_fields["last_build_error"] == ""
        elif result == "failed":
            assert out.build_fields["last_build_error"]


def test_a_removed_service_records_nothing_but_the_job_end() -> None:
    out = job_outcome(job(Kind.BUILD, OK, OK), False, known=False)
    assert out.build_fields is None and not out.commit
    assert [k for k, _ in out.events] == ["job-finished"]


def test_a_failure_names_its_stage_and_keeps_the_output() -> None:
    out = job_outcome(job(Kind.BUILD, FAIL, None), False, known=True)
    assert out.error == "build failed"
    assert out.events[0] == (
        "build-failed",
        {"error": FAIL.tail, "seconds": f"{FAIL.duration:.3f}"},
    )
