"""Errors that cross layers, and whether an error is worth retrying.

Transient: the other side is away or busy (Redis connection refused, the Docker daemon
restarting); retried with backoff and logged "attempt n/N". Permanent: retrying cannot
help (a malformed compose file, an unknown image, a wrong-type Redis key); surfaced at once."""

from __future__ import annotations

import re


class StoreUnavailable(Exception):
    """Redis could not be reached after the retries; the caller decides what to skip."""


class DockerUnavailable(Exception):
    """The Docker daemon did not answer after the retries."""


# What the docker CLI and compose print when the daemon itself cannot be reached (socket
# missing, daemon restarting): worth another try. Anything else (no such image, invalid
# reference, port already allocated, a RUN step that failed) is the request's own fault,
# and a build whose RUN step met a refused connection is not retried behind the user's back.
_DOCKER_TRANSIENT = re.compile(
    r"cannot connect to the docker daemon|is the docker daemon running|"
    r"error during connect|dial unix [^ ]*docker\.sock|docker\.sock: connect:",
    re.IGNORECASE,
)


def docker_error_is_transient(text: str) -> bool:
    """Whether a failed docker/compose call's output says the daemon was away."""
    return bool(_DOCKER_TRANSIENT.search(text))


class CannotDelete(Exception):
    """A container has no program that deletes files (no rm, no busybox: scratch and
    distroless images)."""


class GitError(Exception):
    """A git command failed: a non-zero exit, a timeout, or no git at all. The message names
    the command and git's own last words, credentials already removed from it."""


class RegistryError(Exception):
    """A registry did not answer what was asked: the message says which registry, what, and
    why (credentials never in it). `status`: the HTTP status (0 for no answer); `retryable`:
    worth trying again later (429, 5xx, no answer)."""

    def __init__(self, message: str, status: int = 0, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
