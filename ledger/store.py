"""Append, read and verify the event log. Knows nothing about markets.

Each stream is a hash chain: hash = sha256(prev_hash | stream | version | type | at | payload).
Appends must run inside the caller's transaction, so the event and the projection commit together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection

from ledger import clock
from ledger.models import Event

GENESIS = "0" * 64


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


def canonical_json(payload: dict[str, Any]) -> str:
    """The one serialisation that is hashed: sorted keys, compact, ASCII, no floats allowed."""
    _reject_floats(payload)
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("floats are not allowed in ledger payloads; use int or decimal strings")
    if isinstance(value, dict):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)


def format_at(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_hash(prev_hash: str, stream: str, version: int, type_: str, at: str, payload: str) -> str:
    text = f"{prev_hash}|{stream}|{version}|{type_}|{at}|{payload}"
    return hashlib.sha256(text.encode()).hexdigest()


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


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    stream: str
    version: int
    reason: str

    def __str__(self) -> str:
        return f"event #{self.seq} ({self.stream} v{self.version}): {self.reason}"


def verify_chain(events: Iterable[Event]) -> tuple[int, ChainProblem | None]:
    """Check one stream's events (in version order): contiguous versions, links and hashes.

    Returns (events checked, first problem or None).
    """
    expected_prev = GENESIS
    expected_version = 1
    last_seq = 0
    count = 0
    for event in events:
        count += 1
        if event.seq <= last_seq:
            reason = f"global seq {event.seq} is not after {last_seq} (reordered event)"
            return count, ChainProblem(event.seq, event.stream, event.version, reason)
        last_seq = event.seq
        if event.version != expected_version:
            reason = f"version {event.version} where {expected_version} was expected (missing or reordered event)"
            return count, ChainProblem(event.seq, event.stream, event.version, reason)
        if event.prev_hash != expected_prev:
            return count, ChainProblem(
                event.seq, event.stream, event.version, "prev_hash does not link to the previous event"
            )
        actual = event_hash(event)
        if actual != event.hash:
            return count, ChainProblem(
                event.seq, event.stream, event.version, "content does not match its hash (edited row)"
            )
        expected_prev = event.hash
        expected_version += 1
    return count, None
