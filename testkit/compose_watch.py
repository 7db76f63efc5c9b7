"""`docker compose watch` as a real process: the tool the benchmarks compare the sidecar with."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from sidecar.adapters.compose import kill_group
from testkit.wait import poll
from testkit.workspace import Workspace


class WatchProcess:
    """`docker compose up -d`, then `docker compose watch` in its own process group, its
    output going to `log`: the compose-watch side of the benchmarks that compare with it."""

    def __init__(self, ws: Workspace, log: Path, quiet: float, timeout: float) -> None:
        self.ws = ws
        self.log = log
        self.quiet = quiet  # settled: nothing printed for this long
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        up = self.ws.compose("up", "-d", check=False)
        if up.returncode != 0:
            raise RuntimeError(f"docker compose up failed:\n{up.stderr[-2000:]}")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    "docker",
                    "compose",
                    "-p",
                    self.ws.name,
                    "--project-directory",
                    str(self.ws.root),
                    "watch",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.ws.root,
                start_new_session=True,
            )
        if not poll(lambda: "Watch enabled" in self.text() or self.died(), self.timeout, 0.05):
            raise RuntimeError(f"compose watch did not start:\n{self.tail()}")
        if self.died():
            raise RuntimeError(f"compose watch exited:\n{self.tail()}")
        self.settle()

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:]) or "(no log)"

    def settle(self) -> None:
        """Quiet: compose watch printed nothing for `quiet` seconds."""
        deadline = time.monotonic() + self.timeout
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if self.died():
                raise RuntimeError(f"compose watch exited:\n{self.tail()}")
            now_size = self.size()
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= self.quiet:
                return
            time.sleep(0.05)
        raise RuntimeError(f"compose watch did not settle:\n{self.tail()}")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        kill_group(proc, term_wait=10.0, kill_wait=10.0)
