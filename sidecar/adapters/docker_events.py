"""The Docker events adapter: owns one `docker events` subprocess for the project's
containers. python-on-whales' `docker.system.events()` never stops the process it starts
(its issue #687), so the process is ours: started with a parent-death signal (a SIGKILLed
sidecar leaves no orphan), terminated on stop and before every reconnect. When the stream
ends (daemon restart, socket gone) it reconnects with backoff and reports the gap, so the
core can resync before trusting events again."""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import threading
from collections.abc import Callable

from loguru import logger
from tenacity import Retrying, retry_if_result, stop_never, wait_exponential

from sidecar.core.types import ContainerEvent, StreamState

SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"
ACTIONS = ("start", "die", "kill", "stop", "destroy", "pause", "unpause", "oom", "health_status")


Sink = Callable[[ContainerEvent | StreamState], None]


def parse_event(line: str) -> ContainerEvent | None:
    """One `docker events --format '{{json .}}'` line -> event (None: not ours to handle)."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("Type") != "container":
        return None
    action = str(raw.get("Action") or raw.get("status") or "")
    status = ""
    if action.startswith("health_status"):
        action, _, status = action.partition(":")
        status = status.strip()
    if action not in ACTIONS:
        return None
    attrs = (raw.get("Actor") or {}).get("Attributes") or {}
    if attrs.get(ONEOFF_LABEL) == "True" or not attrs.get(SERVICE_LABEL):
        return None
    return ContainerEvent(
        action=action,
        container=str(raw.get("id") or (raw.get("Actor") or {}).get("ID") or ""),
        service=str(attrs.get(SERVICE_LABEL)),
        name=str(attrs.get("name", "")),
        status=status,
        signal=str(attrs.get("signal", "")),
        exit_code=str(attrs.get("exitCode", "")),
        time_ns=int(raw.get("timeNano") or 0),
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class DockerEvents:
    def __init__(
        self,
        docker_cmd: list[str],
        project: str,
        sink: Sink,
        retry_base_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        self.docker_cmd = docker_cmd
        self.project = project
        self.sink = sink
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self._stop = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        cmd = [
            *self.docker_cmd,
            "events",
            "--format",
            "{{json .}}",
            "--filter",
            "type=container",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
        ]
        for action in ACTIONS:
            cmd += ["--filter", f"event={action}"]
        return cmd

    def interrupt(self) -> None:
        """Ends a blocking read of the stream (the supervisor's stop)."""
        self._terminate()

    def _terminate(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def run(self, stop: threading.Event) -> None:
        """The thread's body, started by the supervisor: follow the stream until `stop`;
        a daemon that is away is retried here with backoff (transient), anything else ends
        `run` with the error and the supervisor restarts it."""
        self._stop = stop
        first = True
        retrying = Retrying(
            wait=wait_exponential(multiplier=self.retry_base_s, max=self.retry_max_s),
            stop=stop_never,
            retry=retry_if_result(lambda ok: not ok and not self._stop.is_set()),
            before_sleep=lambda state: logger.warning(
                "docker events: daemon unreachable (attempt {}), retrying", state.attempt_number
            ),
            sleep=self._sleep,
        )
        while not self._stop.is_set():
            retrying(self._stream, first)
            first = False

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop interrupts the backoff

    def _stream(self, first: bool) -> bool:
        """Run one `docker events` process until it ends; True if it ever connected."""
        if self._stop.is_set():
            return True
        try:
            proc = subprocess.Popen(
                self.command(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets the death signal
            )
        except OSError as exc:
            logger.error("docker events: cannot start the docker CLI: {}", exc)
            return False
        with self._lock:
            self._proc = proc
        connected = self._wait_connected(proc)
        if connected:
            self.sink(StreamState(True, "first connect" if first else "reconnected"))
            assert proc.stdout is not None
            for line in proc.stdout:
                event = parse_event(line)
                if event is not None:
                    self.sink(event)
        self._terminate()
        if self._stop.is_set():
            return True
        err = (proc.stderr.read() if proc.stderr else "").strip()[-300:]
        logger.warning("docker events stream ended{}", f": {err}" if err else "")
        self.sink(StreamState(False, err))
        return connected

    def _wait_connected(self, proc: subprocess.Popen[str]) -> bool:
        """`docker events` prints nothing until something happens, so 'connected' means:
        still running a moment after start (a daemon that is away fails it at once)."""
        try:
            proc.wait(timeout=0.3)
        except subprocess.TimeoutExpired:
            return True
        return False
