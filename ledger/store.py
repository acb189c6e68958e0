"""Append and read the event log, on any database Django speaks. Knows nothing about markets.

Appends must run inside the caller's transaction, so the event and the projection commit together. The
chain itself (canonical JSON, the hash formula, the walk) is `ledger.chain`; the fast SQLite readers of
big files are `ledger.sqlite`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import IntegrityError, connection, transaction

from ledger import clock
from ledger.chain import GENESIS, ChainProblem, canonical_json, compute_hash, format_at, walk
from ledger.models import Event

__all__ = ["GENESIS", "ChainProblem", "canonical_json", "compute_hash", "format_at"]  # the chain's names, here too


def storage_problem(exc: BaseException) -> str | None:
    """Say in words why the database refused a write for reasons no retry fixes, or None.

    Nothing was written in these cases: the transaction failed as a whole.
    """
    raw = str(exc)
    text = raw.lower()
    if "disk is full" in text or "no space" in text:
        return f"the database's disk is full ({raw})"
    if "readonly" in text or "read-only" in text:
        return f"the database is read-only ({raw})"
    if "disk i/o error" in text:
        return f"the database's disk failed ({raw})"
    return None


class ConcurrencyError(Exception):
    """Another writer appended to the stream first (optimistic concurrency on stream+version)."""


_committed: list[Callable[[], None]] = []


def after_commit(listener: Callable[[], None]) -> None:
    """Call `listener` (once per committed transaction that appended events) after each commit of this
    process: the live feed is nudged this way, so a local write reaches browsers without a poll."""
    if listener not in _committed:
        _committed.append(listener)


def _notify() -> None:
    for listener in _committed:
        listener()


def event_hash(event: Event) -> str:
    return compute_hash(event.prev_hash, event.stream, event.version, event.type, format_at(event.at), event.payload)


def head(stream: str) -> Event | None:
    return Event.objects.filter(stream=stream).order_by("-version").first()


def append(
    stream: str,
    type_: str,
    payload: dict[str, Any],
    *,
    expected_version: int | None = None,
    at: dt.datetime | None = None,
) -> Event:
    """Append one event to `stream`. Must be called inside a transaction.

    `expected_version` is the version the caller read; a mismatch raises ConcurrencyError. Two plain
    statements (the head, the insert): this is on every command's path, where the ORM's query building
    cost more than SQLite's work.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("ledger.append must run inside transaction.atomic()")
    when = (at or clock.now()).astimezone(dt.UTC)
    text = canonical_json(payload)
    with connection.cursor() as cursor:
        cursor.execute(_HEAD_SQL, [stream])
        current, prev = cursor.fetchone() or (0, GENESIS)
        if expected_version is not None and expected_version != current:
            raise ConcurrencyError(f"stream {stream} is at version {current}, expected {expected_version}")
        version = current + 1
        digest = compute_hash(prev, stream, version, type_, format_at(when), text)
        stored_at = connection.ops.adapt_datetimefield_value(when)
        try:  # no savepoint: a conflict aborts the caller's whole transaction, which is what it must do
            cursor.execute(_INSERT_SQL, [stream, version, type_, text, stored_at, prev, digest])
        except IntegrityError as exc:
            raise ConcurrencyError(f"stream {stream} moved past version {current}") from exc
        (seq,) = cursor.fetchone()
    if _committed:
        transaction.on_commit(_notify)
    event = Event(
        seq=seq, stream=stream, version=version, type=type_, payload=text, at=when, prev_hash=prev, hash=digest
    )
    event._state.adding = False  # it is the stored row, as if read back
    event._state.db = connection.alias
    return event


_HEAD_SQL = 'SELECT "version", "hash" FROM "ledger_event" WHERE "stream" = %s ORDER BY "version" DESC LIMIT 1'
_INSERT_SQL = (
    'INSERT INTO "ledger_event" ("stream", "version", "type", "payload", "at", "prev_hash", "hash") '
    'VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING "seq"'
)


def sync_seq() -> None:
    """After events were written with seqs of their own (a bulk load, a restore): PostgreSQL's seq sequence
    moves past them. SQLite's AUTOINCREMENT follows by itself."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('ledger_event', 'seq'), "
            "GREATEST((SELECT COALESCE(MAX(seq), 0) FROM ledger_event), 1))"
        )


def read(stream: str | None = None, *, after: int = 0, limit: int | None = None) -> list[Event]:
    qs = Event.objects.filter(seq__gt=after)
    if stream is not None:
        qs = qs.filter(stream=stream)
    qs = qs.order_by("seq")
    if limit is not None:
        qs = qs[:limit]
    return list(qs)


def iter_stream(stream: str, chunk: int = 2000) -> Iterator[Event]:
    """Every event of a stream in version order, read in chunks."""
    last = 0
    while True:
        batch = list(Event.objects.filter(stream=stream, version__gt=last).order_by("version")[:chunk])
        if not batch:
            return
        yield from batch
        last = batch[-1].version


def streams() -> list[str]:
    return list(Event.objects.values_list("stream", flat=True).distinct().order_by("stream"))


def verify_chain(events: Iterable[Event]) -> tuple[int, ChainProblem | None]:
    """Check one stream's events (in version order) with the one chain walk (`ledger.chain.walk`).

    Returns (events checked, first problem or None).
    """
    events = iter(events)
    first = next(events, None)
    if first is None:
        return 0, None
    rows = ((e.seq, e.version, e.type, e.payload, e.at, e.prev_hash, e.hash) for e in (first, *events))
    return walk(first.stream, rows)
