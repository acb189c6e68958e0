"""Presence's hand-written statements (operational state, not the ledger): who has sockets open, counted
by a few prepared statements per batch of connects, and committed without waiting for the disk. Beside
`markets.sql` (the commands' and the projection's statements) because nothing of the market reads them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

_PRESENCE_WHERE = ' WHERE "session_id" = %s AND "user_id" = %s'
_PRESENCE_SET = {
    # Sockets came: a stale row (its process died) starts counting afresh.
    "came": 'UPDATE "markets_presence" SET "sockets" = CASE WHEN "last_seen" < %s THEN %s ELSE "sockets" + %s END,'
    ' "last_seen" = %s' + _PRESENCE_WHERE,
    # Sockets went: never below 0, and a stale row goes to 0.
    "went": 'UPDATE "markets_presence" SET "sockets" = CASE WHEN "last_seen" < %s OR "sockets" <= %s THEN 0'
    ' ELSE "sockets" - %s END, "last_seen" = %s' + _PRESENCE_WHERE,
    # Came and went between two writes: seen now, counted as before.
    "seen": 'UPDATE "markets_presence" SET "last_seen" = %s' + _PRESENCE_WHERE,
}


def update_presence(changes: dict[tuple[str, int], int], now: dt.datetime, stale_before: dt.datetime) -> int:
    """Net socket changes per (session, user) row, one prepared statement per kind of change
    (`executemany`): a storm of 500 connects is three statements, not 500 ORM updates. Returns how many
    rows there were to change (a pair without a row yet is not counted)."""
    at, stale = connection.ops.adapt_datetimefield_value(now), connection.ops.adapt_datetimefield_value(stale_before)
    rows: dict[str, list[tuple]] = {"came": [], "went": [], "seen": []}
    for (session_id, user_id), n in sorted(changes.items()):
        if n > 0:
            rows["came"].append((stale, n, n, at, session_id, user_id))
        elif n < 0:
            rows["went"].append((stale, -n, -n, at, session_id, user_id))
        else:
            rows["seen"].append((at, session_id, user_id))
    changed = 0
    with connection.cursor() as cursor:
        for kind, params in rows.items():
            if params:
                cursor.executemany(_PRESENCE_SET[kind], params)
                changed += cursor.rowcount
    return changed


@contextmanager
def commit_without_waiting() -> Iterator[None]:
    """A transaction (and writer turn) whose commit need not wait for the disk: for operational state that
    losing costs nothing (who is online), never for the ledger. PostgreSQL: synchronous_commit off for this
    transaction alone. SQLite (WAL): synchronous=NORMAL on this connection for this commit, FULL again after
    it; a power cut may lose the commit, never corrupt the file (nor an earlier FULL commit)."""
    from django.db import transaction

    from ledger import turns

    lighten = connection.vendor == "sqlite" and not connection.in_atomic_block
    if lighten:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=NORMAL")
    try:
        with turns.writer_turn(), transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            yield
    finally:
        if lighten:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA synchronous=FULL")
