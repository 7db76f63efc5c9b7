"""One way to log a retry, for every adapter's tenacity policy: "<what> failed (attempt n/N)"."""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger
from tenacity import RetryCallState


def log_attempt(
    what: str, attempts: int, describe: Callable[[BaseException | None], str]
) -> Callable[[RetryCallState], None]:
    """A tenacity `before_sleep` hook; `describe` turns the error into a short reason (never
    a URL or anything else that could carry a password)."""

    def log(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "{} failed (attempt {}/{}): {}", what, state.attempt_number, attempts, describe(exc)
        )

    return log
