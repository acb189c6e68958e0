"""Follow the database from inside each web process, once per process (see markets.push for the path).

Any process may write (a request, `run_oracle`, `settle`, the admin), so the web process cannot wait
to be told: one asyncio task per process polls each registered source by its position (the ledger's
`seq`, the oracle's tick id, with the gaps PostgreSQL may still fill: `ledger.postgres.Position`) every
FEED_POLL_SECONDS, at once when a local commit nudges it, within WATCH_SECONDS when another process
commits to the SQLite file, and at once on a PostgreSQL NOTIFY (`ledger.postgres.Listener`: only the
source whose table the commit wrote to is read then; the others wait for their own). Each new
batch is read ONCE and handed to the source's handler, which renders and group-sends to the browsers;
so N browsers cost one read of each new row, not N. All of the feed's database work runs in one thread
of its own, on one connection kept as long as CONN_MAX_AGE allows.

Its pace: after a poll that found something, the next poll waits until FEED_PUSH_GAP_SECONDS (0.1) have
passed since it began, so a busy session is pushed at most ten times a second per process, each push
carrying everything committed meanwhile. A push costs a send to every socket whatever it carries, and
every browser (and phone) a swap: pushing every commit of a busy session spent most of the machine on
sending and left less for the trades themselves. A commit after a quiet spell is read at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from ledger.postgres import LEDGER_CHANNEL

log = logging.getLogger(__name__)

Poll = Callable[[Any], tuple[list[Any], Any]]  # position -> (new items, new position); sync (feed thread)
Start = Callable[[], Any]  # the position at start-up (sync)
Handler = Callable[[list[Any]], Awaitable[None]]


@dataclass
class Source:
    name: str
    start: Start
    poll: Poll
    handler: Handler
    channel: str | None = None  # the NOTIFY channel its table's commits signal on (PostgreSQL)
    cursor: Any = None


class Feed:
    def __init__(self) -> None:
        self.sources: dict[str, Source] = {}
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._started: asyncio.Event | None = None
        self._due: set[str] | None = None  # the sources the next poll reads (None: all)
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger-feed")
        self.listener = None
        self.polls = 0

    def register(self, name: str, start: Start, poll: Poll, handler: Handler, channel: str | None = None) -> None:
        self.sources[name] = Source(name, start, poll, handler, channel)

    async def ensure_running(self) -> None:
        """Start the follower on the running loop (first consumer to connect in this process) and return
        once every source holds its starting position. A socket reads what it shows first only then:
        what commits later is past that position, so it is pushed; what committed before is in the read.
        (Read before the follower started, a commit in between would be in neither.)"""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._task is None or self._task.done() or self._loop is not loop:
                self._start(loop)
            started = self._started
        assert started is not None
        await asyncio.wait_for(started.wait(), START_SECONDS)  # TimeoutError: the database does not answer

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._wake = asyncio.Event()
        self._started = asyncio.Event()
        self._due = None
        for source in self.sources.values():
            source.cursor = None
        self._task = loop.create_task(self._run(), name="ledger-feed")
        self._listen()

    def nudge(self, channel: str | None = None) -> None:
        """Ask the follower to poll now (called on commit, from any thread): the sources whose commits
        signal on `channel` (a PostgreSQL NOTIFY), or all of them."""
        loop = self._loop
        if loop is None or self._wake is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._nudged, channel)
        except RuntimeError:
            pass

    def _nudged(self, channel: str | None) -> None:
        names = {s.name for s in self.sources.values() if channel is not None and s.channel == channel}
        if not names:
            self._due = None
        elif self._due is not None:
            self._due |= names
        if self._wake is not None:
            self._wake.set()

    def _listen(self) -> None:
        """On PostgreSQL, one connection LISTENs for commits of other processes (NOTIFY at commit)."""
        from django.db import connections

        from ledger.postgres import Listener

        db = connections["default"]
        if db.vendor == "postgresql" and self.listener is None:
            self.listener = Listener(db.settings_dict, self.nudge).start()

    async def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a database read in the feed's own thread (its one connection, kept as CONN_MAX_AGE allows)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(db_work, fn, *args))

    async def _run(self) -> None:
        interval = float(getattr(settings, "FEED_POLL_SECONDS", 0.2))
        gap = float(getattr(settings, "FEED_PUSH_GAP_SECONDS", 0.0))
        sent_at = -gap
        while True:
            if gap and (rest := sent_at + gap - time.monotonic()) > 0:
                await asyncio.sleep(rest)
            seen = database_signature()  # before reading: a commit during the poll triggers another
            polled_at = time.monotonic()
            due, self._due = self._due, set()
            try:
                for source in list(self.sources.values()):
                    if due is not None and source.name not in due and source.cursor is not None:
                        continue  # nothing committed to its table since its last read
                    if source.cursor is None:
                        source.cursor = await self.run_sync(source.start)
                        continue
                    items, cursor = await self.run_sync(source.poll, source.cursor)
                    source.cursor = cursor
                    if items:
                        sent_at = polled_at
                        await source.handler(items)
                if self._started is not None and not self._started.is_set():
                    self._started.set()
                self.polls += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following: one bad batch must not silence every browser
                log.exception("ledger feed poll failed")
            await self._wait(polled_at + interval, seen)

    async def _wait(self, deadline: float, seen: tuple | None) -> None:
        """Until a nudge (a local commit, a NOTIFY: the sources it names are read), a change of the
        database files (another process committed) or the end of the interval (every source is read;
        on SQLite also after a nudge that came with a change of the file, which tells nothing of which
        table another process may have written to as well). Looking at the files is a stat, not a query,
        so it can be done every few ms."""
        assert self._wake is not None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._due = None
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(remaining, WATCH_SECONDS) if seen else remaining)
                if seen and database_signature() != seen:
                    self._due = None  # the file changed too: by this commit, or by another process's
                break
            except TimeoutError:
                if seen and database_signature() != seen:
                    self._due = None
                    break
        self._wake.clear()


# How long a socket waits for the follower's starting positions before it is told to come back later.
START_SECONDS = 10.0
# How often the database files are looked at for other processes' commits (SQLite only).
WATCH_SECONDS = 0.01
# The write-ahead log's index (the "-shm" file) starts with a header that every commit rewrites (its
# change counter and last committed frame), 48 bytes, kept twice (sqlite.org/walformat.html).
WAL_INDEX_HEADER = 48


def database_signature() -> tuple | None:
    """What tells that another process committed to the SQLite file: the header of the write-ahead log's
    index, which every commit rewrites, with the size and modification time of the file and its log (a
    checkpoint). The log's own size and time are not enough: once checkpointed it is written again from
    its start, so its size stays put, and two writes within a tick of the file system's clock leave
    one modification time (a transaction's first pages and its commit could then look alike). None where
    there is no file to look at (another database): then the feed relies on its polls alone."""
    from django.db import connections

    found = connections["default"].settings_dict
    db = _file_named(found["ENGINE"], str(found.get("NAME") or ""))
    return None if db is None else file_signature(db)


@functools.cache
def _file_named(engine: str, name: str) -> str | None:
    """The SQLite file a database setting names (None: another database), worked out once per setting:
    the feed asks every WATCH_SECONDS."""
    from ledger.sqlite import database_file

    db = database_file({"ENGINE": engine, "NAME": name})
    return None if db is None else str(db)


def file_signature(db: str) -> tuple:
    """`database_signature` of the SQLite file at `db`."""
    signature: list[Any] = []
    for path in (db, f"{db}-wal"):
        try:
            st = os.stat(path)
        except OSError:
            signature.append(None)
        else:
            signature.append((st.st_mtime_ns, st.st_size))
    signature.append(_index_header(f"{db}-shm"))
    return tuple(signature)


# The WAL index files this process reads the header of, by (path, inode): opened once, NEVER closed.
# SQLite's locks are POSIX advisory locks, which belong to the process, and closing ANY descriptor of a
# file drops every lock the process holds on it (sqlite.org/howtocorrupt.html, 2.2): a reader's mark
# would vanish, and a checkpoint in another process could then restart the log under a live read.
_index_files: dict[tuple[str, int], int] = {}


def _index_header(path: str) -> bytes | None:
    """The first bytes of the WAL index at `path`, read through a descriptor kept open for good (a new
    one only when the file is a new one: SQLite removes the index when no connection uses it)."""
    try:
        key = (path, os.stat(path).st_ino)
        fd = _index_files.get(key)
        if fd is None:
            fd = _index_files[key] = os.open(path, os.O_RDONLY)
        return os.pread(fd, WAL_INDEX_HEADER, 0)
    except OSError:
        return None


def db_work(fn: Callable[..., Any], *args: Any) -> Any:
    """A database read in the feed's thread, on the connection it keeps from poll to poll (whatever
    CONN_MAX_AGE says: that is for request threads); a connection that broke is replaced."""
    from django.db import connection

    if connection.connection is not None and connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            connection.close()
    return fn(*args)


feed = Feed()


def appended() -> None:
    """This process committed events (`ledger.store.after_commit`): read the log now, as a NOTIFY from
    another process would have it read (the same channel: the same table)."""
    feed.nudge(LEDGER_CHANNEL)
