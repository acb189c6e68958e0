"""Follow the database from inside each web process and fan new rows out, once per process.

Any process may write (a request, `run_oracle`, `settle`, the admin), so the web process cannot wait
to be told: one asyncio task per process polls each registered source by its monotonic cursor
(the ledger's `seq`, the oracle's tick id) every FEED_POLL_SECONDS, or at once when a local commit
nudges it. Each new batch is read ONCE and handed to the source's handler, which renders and
group-sends to the browsers; so N browsers cost one read of each new row, not N.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

Poll = Callable[[int], tuple[list[Any], int]]  # cursor -> (new items, new cursor); sync (runs in a thread)
Start = Callable[[], int]  # current cursor at start-up (sync)
Handler = Callable[[list[Any]], Awaitable[None]]


@dataclass
class Source:
    name: str
    start: Start
    poll: Poll
    handler: Handler
    cursor: int = -1


class Feed:
    def __init__(self) -> None:
        self.sources: dict[str, Source] = {}
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = threading.Lock()
        self.polls = 0

    def register(self, name: str, start: Start, poll: Poll, handler: Handler) -> None:
        self.sources[name] = Source(name, start, poll, handler)

    def ensure_running(self) -> None:
        """Start the follower on the running loop (first consumer to connect in this process)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._task is not None and not self._task.done() and self._loop is loop:
                return
            self._loop = loop
            self._wake = asyncio.Event()
            for source in self.sources.values():
                source.cursor = -1
            self._task = loop.create_task(self._run(), name="ledger-feed")

    def nudge(self) -> None:
        """Ask the follower to poll now (called on commit, from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:
            pass

    async def _run(self) -> None:
        from asgiref.sync import sync_to_async

        interval = float(getattr(settings, "FEED_POLL_SECONDS", 0.2))
        while True:
            try:
                for source in list(self.sources.values()):
                    if source.cursor < 0:
                        source.cursor = await sync_to_async(closing(source.start), thread_sensitive=False)()
                        continue
                    items, cursor = await sync_to_async(closing(source.poll), thread_sensitive=False)(source.cursor)
                    source.cursor = cursor
                    if items:
                        await source.handler(items)
                self.polls += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following: one bad batch must not silence every browser
                log.exception("ledger feed poll failed")
            assert self._wake is not None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass
            self._wake.clear()


def closing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a DB read in a worker thread and close that thread's connection afterwards."""

    def run(*args: Any) -> Any:
        from django.db import close_old_connections, connection

        try:
            return fn(*args)
        finally:
            close_old_connections()
            connection.close()

    return run


feed = Feed()


def nudge() -> None:
    feed.nudge()
