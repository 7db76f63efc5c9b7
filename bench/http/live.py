"""The phases with a real daemon (dockerd, Redis): a Docker event to an SSE client, and the
daemon's idle CPU with and without the HTTP server and two open dashboards."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from bench.common import Json, median
from testkit.http_api import Api, EventStream
from testkit.sidecar import Sidecar, rotation_state, served
from testkit.wait import free_port, wait_for
from testkit.workspace import Workspace

TOKEN = "bench"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _daemon(base: Path, logs: Path, redis_url: str, http: bool) -> tuple[Workspace, Sidecar, int]:
    ws = Workspace(base / uuid.uuid4().hex[:8], f"benchhttp{uuid.uuid4().hex[:6]}")
    served(ws, "web", replicas=2)
    ws.write_compose()
    port = free_port()
    settings = (
        {"http_listen": f"127.0.0.1:{port}", "http_token": TOKEN} if http else {"http_listen": ""}
    )
    sc = Sidecar(ws, redis_url, logs / f"{ws.name}.log", **settings)
    sc.start()
    wait_for(lambda: len(rotation_state(sc, "web")[0]) == 2, 60, "2 serving")
    sc.settle()
    return ws, sc, port


def _stop(ws: Workspace, sc: Sidecar) -> None:
    try:
        sc.stop()
        sc.cleanup_keys()
    finally:
        ws.cleanup()


# Run in the dashboard's page: the events read the way app.js reads them (fetch, so the
# token goes along), each `instance-left` stamped with the browser's clock as it arrives.
BROWSER_READER = """
(token) => {
  window.__left = [];
  (async () => {
    const resp = await fetch("v1/events", {headers: {Authorization: "Bearer " + token}});
    const reader = resp.body.getReader();
    const text = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      const at = (performance.timeOrigin + performance.now()) / 1000;
      buf += text.decode(value, {stream: true});
      let cut;
      while ((cut = buf.indexOf("\\n\\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const kind = /^event: (.*)$/m.exec(block);
        const id = /^id: (.*)$/m.exec(block);
        const data = /^data: (.*)$/m.exec(block);
        if (kind && kind[1] === "instance-left" && data)
          window.__left.push({at, id: id[1], data: JSON.parse(data[1])});
      }
    }
  })();
}
"""


class Reader(Protocol):
    def left(self, timeout: float) -> tuple[float, str, dict[str, str]]:
        """The next instance-left: (wall time it arrived, stream id, fields)."""
        ...

    def close(self) -> None: ...


class SseReader:
    """A plain SSE client in this process."""

    def __init__(self, port: int) -> None:
        self.stream = EventStream(port, headers={"Authorization": f"Bearer {TOKEN}"})
        assert self.stream.status == 200, self.stream.status

    def left(self, timeout: float) -> tuple[float, str, dict[str, str]]:
        msg = self.stream.until("instance-left", "web", timeout=timeout)[-1]
        return time.time(), msg.id, msg.data

    def close(self) -> None:
        self.stream.close()


class BrowserReader:
    """The dashboard open in Debian's headless chromium, reading the events in the page."""

    def __init__(self, port: int, chromium: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.pw = sync_playwright().start()
        self.browser = self.pw.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        self.page = self.browser.new_page()
        self.page.goto(f"http://127.0.0.1:{port}/")
        self.page.evaluate(BROWSER_READER, TOKEN)
        self.seen = 0

    def left(self, timeout: float) -> tuple[float, str, dict[str, str]]:
        self.page.wait_for_function(f"window.__left.length > {self.seen}", timeout=timeout * 1000)
        got = self.page.evaluate(f"window.__left[{self.seen}]")
        self.seen += 1
        return float(got["at"]), str(got["id"]), dict(got["data"])

    def close(self) -> None:
        self.browser.close()
        self.pw.stop()


def event_to_client(
    base: Path, logs: Path, redis_url: str, kills: int, chromium: Path | None
) -> Json:
    """`docker kill` of a serving instance, `kills` times: from the Docker event's own time
    (`docker_at` of the `instance-left` event) to a reader having it: a plain SSE client,
    and the dashboard in a real browser, both open at once."""
    ws, sc, port = _daemon(base, logs, redis_url, http=True)
    readers: dict[str, Reader] = {"sse_client": SseReader(port)}
    lags: dict[str, list[float]] = {"sse_client": [], "to_redis": []}
    try:
        if chromium is not None:
            readers["browser"] = BrowserReader(port, chromium)
            lags["browser"] = []
        for _ in range(kills):
            victim = ws.containers("web")[0]
            # not waited for: the event is on the stream before the docker CLI has exited
            kill = subprocess.Popen(["docker", "kill", victim], stdout=subprocess.DEVNULL)
            for name, reader in readers.items():
                got, entry_id, data = reader.left(timeout=30)
                lags[name].append(got - float(data["docker_at"]))
            # the stream id's milliseconds: when Redis stored the entry
            lags["to_redis"].append(int(entry_id.split("-")[0]) / 1000 - float(data["docker_at"]))
            assert kill.wait(30) == 0, "docker kill failed"
            wait_for(lambda: len(rotation_state(sc, "web")[0]) == 2, 60, "replaced")
            sc.settle()
    finally:
        for reader in readers.values():
            reader.close()
        _stop(ws, sc)
    out: Json = {"kills": kills}
    for name, values in lags.items():
        out[name] = {"lags_s": values, "median_s": median(values), "max_s": max(values)}
    return out


class Dashboards:
    """Two dashboards open in chromium (each reads the events and the status the way the
    page does); without a browser, two stand-ins that behave the same: an event stream each
    and the status read every 10 s."""

    def __init__(self, port: int, chromium: Path | None) -> None:
        self.stop = threading.Event()
        self.streams: list[EventStream] = []
        self.browser: Any = None
        if chromium is not None:
            from playwright.sync_api import sync_playwright

            self.pw = sync_playwright().start()
            self.browser = self.pw.chromium.launch(
                executable_path=str(chromium), args=["--no-sandbox"]
            )
            for _ in range(2):
                context = self.browser.new_context()
                context.add_init_script(f"sessionStorage.setItem('sidecar-token', {TOKEN!r})")
                context.new_page().goto(f"http://127.0.0.1:{port}/")
            return
        for _ in range(2):
            stream = EventStream(port, "?backlog=300", {"Authorization": f"Bearer {TOKEN}"})
            self.streams.append(stream)
            threading.Thread(target=self._read_all, args=(stream,), daemon=True).start()
            threading.Thread(
                target=self._status_every, args=(Api(port, TOKEN),), daemon=True
            ).start()

    def _read_all(self, stream: EventStream) -> None:
        while not self.stop.is_set():
            try:
                stream.next(timeout=3600)
            except (EOFError, OSError, ValueError):  # closed by the phase's end
                return

    def _status_every(self, api: Api, every: float = 10.0) -> None:
        while not self.stop.is_set():
            api.get("/v1/status")
            self.stop.wait(every)

    def close(self) -> None:
        self.stop.set()
        for stream in self.streams:
            stream.close()
        if self.browser is not None:
            self.browser.close()
            self.pw.stop()


def idle_cpu(base: Path, logs: Path, redis_url: str, seconds: float, chromium: Path | None) -> Json:
    """The daemon's CPU share while nothing happens: without the server, then with it and
    two dashboards open (in chromium when there is one)."""
    out: Json = {"seconds": seconds, "dashboards": "chromium" if chromium else "stand-ins"}
    for label, http in (("without_server", False), ("with_server_2_dashboards", True)):
        ws, sc, port = _daemon(base, logs, redis_url, http)
        dashboards = Dashboards(port, chromium) if http else None
        try:
            time.sleep(3.0)  # the dashboards' first reads are not idle
            assert sc.proc is not None
            c0, t0 = cpu_seconds(sc.proc.pid), time.monotonic()
            time.sleep(seconds)
            used = cpu_seconds(sc.proc.pid) - c0
            out[label] = {"cpu_s": used, "share": used / (time.monotonic() - t0)}
        finally:
            if dashboards is not None:
                dashboards.close()
            _stop(ws, sc)
    return out
