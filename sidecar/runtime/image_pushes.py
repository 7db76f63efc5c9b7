"""The `images` thread: follows the image hub (`sidecar:hub:images`, shared by every project
under the prefix), where the HTTP server of whichever sidecar received a registry's
notification put the pushes, and hands each one to the reactor, which pulls exactly the
services that run that repository and tag."""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger

from sidecar.core.errors import StoreUnavailable
from sidecar.core.images import ImageError, parse_ref
from sidecar.core.ports import StorePort
from sidecar.core.types import ImagePushed

BLOCK_MS = 1000  # a blocking read at a time: how soon the thread sees the stop


class ImagePushes:
    def __init__(self, store: StorePort, post: Callable[[ImagePushed], None]) -> None:
        self.store = store
        self.post = post

    def run(self, stop: threading.Event) -> None:
        after: str | None = None  # only what is pushed from now on
        while not stop.is_set():
            hub = self.store.keys.image_hub
            try:
                if after is None:
                    after = self.store.newest_entry(hub)
                entries = self.store.read_entries(hub, after, BLOCK_MS)
            except StoreUnavailable:
                stop.wait(1.0)
                continue
            for entry_id, fields in entries:
                after = entry_id
                try:
                    ref = parse_ref(fields.get("ref", ""))
                except ImageError as exc:
                    logger.warning("image hub: entry {} skipped: {}", entry_id, exc)
                    continue
                self.post(ImagePushed(str(ref), fields.get("digest", ""), fields.get("source", "")))
