"""The hash chain, written once: canonical JSON, the time as hashed, the formula, and the walk.

Each stream is a chain: hash = sha256(prev_hash | stream | version | type | at | payload), where `at` is
UTC with microseconds (`format_at`) and payload the canonical JSON exactly as stored. Every reader checks a
stream with `walk` (the ORM reference in `ledger.store`, the SQLite readers in `ledger.sqlite`); a reader
of a seq range that cuts streams apart keeps one `Link` per stream instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
_sha256 = hashlib.sha256


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


AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_at(at: dt.datetime) -> str:
    """An event's time as it is hashed: UTC, microseconds, a Z."""
    return at.astimezone(dt.UTC).strftime(AT_FORMAT)


def parse_at(text: str) -> dt.datetime:
    """The instant `format_at` wrote (an event's JSON shape carries its time this way)."""
    return dt.datetime.strptime(text, AT_FORMAT).replace(tzinfo=dt.UTC)


def at_text(stored: Any) -> str:
    """`format_at` of an `at` value as a database hands it back: Django's SQLite backend stores
    `str(naive UTC datetime)` ('2026-01-05 09:00:00.001001', no fraction on a whole second); anything else
    (a datetime, an ISO text with an offset) is read exactly as the ORM would read it."""
    if (
        isinstance(stored, str)
        and len(stored) == 26
        and stored[10] == " "
        and stored[19] == "."
        and stored[20:].isdigit()
    ):
        return f"{stored[:10]}T{stored[11:]}Z"
    if isinstance(stored, dt.datetime):
        value = stored
    else:
        from django.utils.dateparse import parse_datetime

        value = parse_datetime(str(stored))
        if value is None:
            raise ValueError(f"cannot read the event time {stored!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return format_at(value)


def hash_text(prev_hash: str, stream: str, version: int, type_: str, at: str, payload: str) -> str:
    """The formula's text. `at` is the hashed text of the time (`format_at` / `at_text`)."""
    return f"{prev_hash}|{stream}|{version}|{type_}|{at}|{payload}"


def compute_hash(prev_hash: str, stream: str, version: int, type_: str, at: str, payload: str) -> str:
    """The formula: sha256 of `hash_text`, hex."""
    return hashlib.sha256(hash_text(prev_hash, stream, version, type_, at, payload).encode()).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    stream: str
    version: int
    reason: str

    def __str__(self) -> str:
        return f"event #{self.seq} ({self.stream} v{self.version}): {self.reason}"


class Link:
    """Where a chain stands while it is walked: the version and hash the next event must follow."""

    __slots__ = ("bad", "count", "last_hash", "last_seq", "version")

    def __init__(self, version: int = 0, last_hash: str = GENESIS) -> None:
        self.version = version
        self.last_hash = last_hash
        self.last_seq = 0
        self.count = 0
        self.bad = False

    def step(self, stream: str, seq: int, version: int, type_: str, payload: str, at: Any, prev: str, digest: str):
        """Check one event; returns why it breaks the chain (and stays broken), or None.

        The hot loop of every verify: the common case (the next version, linked, the time as SQLite
        stores it) is written out here, `hash_text`'s formula and `at_text`'s fast path inline."""
        self.count += 1
        if seq > self.last_seq and version == self.version + 1 and prev == self.last_hash:
            if type(at) is str and len(at) == 26 and at[10] == " " and at[19] == "." and at[20:].isdigit():
                text = f"{prev}|{stream}|{version}|{type_}|{at[:10]}T{at[11:]}Z|{payload}"
            else:
                text = hash_text(prev, stream, version, type_, at_text(at), payload)
            if _sha256(text.encode()).hexdigest() == digest:
                self.last_seq, self.version, self.last_hash = seq, version, digest
                return None
        self.bad = True
        if seq <= self.last_seq:
            return f"global seq {seq} is not after {self.last_seq} (reordered event)"
        if version != self.version + 1:
            return f"version {version} where {self.version + 1} was expected (missing or reordered event)"
        if prev != self.last_hash:
            return "prev_hash does not link to the previous event"
        return "content does not match its hash (edited row)"


def scan(rows: Iterable[tuple]) -> dict[str, tuple[int, str, Link]]:
    """Walk the streams met in `rows` (seq, stream, version, type, payload, at, prev_hash, hash, in seq
    order, streams interleaved), each from where it enters: {stream: (first version, its prev_hash, the
    Link after its last event)}. A stream's later rows are skipped once it broke. `Link.step` in one loop,
    its common case written out (this is what verifying a million events spends its time in)."""
    state: dict[str, tuple[int, str, Link]] = {}
    sha256 = _sha256
    for seq, stream, version, type_, payload, at, prev, digest in rows:
        entry = state.get(stream)
        if entry is None:
            entry = state[stream] = (version, prev, Link(version - 1, prev))
        link = entry[2]
        if link.bad:
            continue
        if (
            seq > link.last_seq
            and version == link.version + 1
            and prev == link.last_hash
            and type(at) is str
            and len(at) == 26
            and at[10] == " "
            and at[19] == "."
            and at[20:].isdigit()
            and sha256(f"{prev}|{stream}|{version}|{type_}|{at[:10]}T{at[11:]}Z|{payload}".encode()).hexdigest()
            == digest
        ):
            link.count += 1
            link.last_seq, link.version, link.last_hash = seq, version, digest
        else:
            link.step(stream, seq, version, type_, payload, at, prev, digest)  # any other case, and the reason
    return state


def walk(stream: str, rows: Iterable[tuple]) -> tuple[int, ChainProblem | None]:
    """Check one stream's events (rows of seq, version, type, payload, at, prev_hash, hash, in version
    order): contiguous versions from 1, links and hashes. Returns (events checked, first problem or None)."""
    link = Link()
    for seq, version, type_, payload, at, prev, digest in rows:
        reason = link.step(stream, seq, version, type_, payload, at, prev, digest)
        if reason is not None:
            return link.count, ChainProblem(seq, stream, version, reason)
    return link.count, None
