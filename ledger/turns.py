"""Writers of one process take turns before they ask SQLite for its write lock.

SQLite lets one writer in at a time. A connection that finds the lock taken does not queue: its busy
handler sleeps and tries again, 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 and then 100 ms at a time. Eight
request threads accepting at once then wait hundreds of milliseconds for a lock that was free after one:
the HTTP accept's p99 was about a second beside a p50 of 54 ms. Commands of this process therefore queue
on a lock of their own first, and each is woken the moment the one before it has committed. Writers in
other processes (the oracle, a second daphne) still meet SQLite's busy handler, as before.

Re-entrant (a command inside a test's transaction or inside another command takes its turn again at no
cost); PostgreSQL's writers queue on their row locks, so there it does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connection

WAIT_SECONDS = 30  # as long as SQLite's own busy timeout (sessionsite/config.py)

_turn = threading.RLock()


@contextmanager
def writer_turn() -> Iterator[None]:
    """Hold this process's writer turn for one transaction on SQLite (nothing on other engines)."""
    if connection.vendor != "sqlite":
        yield
        return
    if not _turn.acquire(timeout=WAIT_SECONDS):
        raise OperationalError("database is locked (waited for this process's writer turn)")
    try:
        yield
    finally:
        _turn.release()
