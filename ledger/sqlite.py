"""Fast read paths over the event table of a SQLite file: plain sqlite3 cursors, no ORM objects.

`verify_stream_raw` gives exactly what `store.verify_chain(store.iter_stream(stream))` gives (same count,
same first problem), at several times its speed: rows come straight from the sqlite3 cursor into the same
chain walk (`ledger.chain`). `verify_log_raw` does it for every stream in one sequential pass over the
table. Use them for large logs (the bench verifies a million events with them); the ORM path stays the
reference and works on any database.

SQLite only. `db` is a path to the database file, an open `sqlite3.Connection`, or a Django connection
(`django.db.connection`, whose transaction it then reads inside, e.g. in tests).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ledger.chain import GENESIS, ChainProblem, Link, scan, walk

# A private connection gets a big page cache: replaying or verifying one stream after another revisits the
# pages that interleaved streams share.
CACHE_KIB = 256 * 1024

Db = str | Path | sqlite3.Connection | Any

# `at` as stored text: a Django connection would otherwise turn it into a datetime on the way out.
_VERIFY_SQL = (
    "SELECT seq, version, type, payload, CAST(at AS TEXT), prev_hash, hash FROM ledger_event"
    " WHERE stream = ? ORDER BY version"
)


@contextlib.contextmanager
def connect(db: Db) -> Iterator[sqlite3.Connection]:
    """A raw sqlite3 connection for `db`; closed afterwards only if it was opened here."""
    if isinstance(db, sqlite3.Connection):
        yield db
        return
    if isinstance(db, str | Path):
        path = Path(db)
        if not path.is_file():
            raise FileNotFoundError(f"no SQLite database at {path}")
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            yield conn
        finally:
            conn.close()
        return
    # A Django connection wrapper: use its live DB-API connection (and so its open transaction).
    if getattr(db, "vendor", None) != "sqlite":
        raise ValueError("ledger.sqlite reads SQLite only; use ledger.store on other databases")
    db.ensure_connection()
    yield db.connection


def verify_stream_raw(db: Db, stream: str) -> tuple[int, ChainProblem | None]:
    """Check one stream's chain; the same result as `store.verify_chain(store.iter_stream(stream))`."""
    with connect(db) as conn:
        return walk(stream, conn.execute(_VERIFY_SQL, (stream,)))


def streams_raw(db: Db) -> list[str]:
    """Every stream in the log, sorted (as `store.streams()`)."""
    with connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT DISTINCT stream FROM ledger_event ORDER BY stream")]


_LOG_SQL = (
    "SELECT seq, stream, version, type, payload, CAST(at AS TEXT), prev_hash, hash FROM ledger_event"
    " WHERE seq BETWEEN ? AND ? ORDER BY seq"
)

# Below this many events per process, one process is quicker than starting another.
PARALLEL_MIN_EVENTS = 100_000


def database_file(settings_dict: dict[str, Any]) -> Path | None:
    """The SQLite file behind a Django database setting, or None (another database, or in memory)."""
    name = str(settings_dict.get("NAME") or "")
    if "sqlite" not in settings_dict["ENGINE"] or not name or name.startswith(("file:", ":memory:")):
        return None
    return Path(name)


def in_seq_ranges(fn: Any, path: str, low: int, high: int, parts: int, *args: Any) -> list[Any]:
    """`fn((path, first seq, last seq, *args))` for `parts` consecutive ranges covering low..high, each in
    its own process (forked: the children need no set-up), in range order."""
    bounds = [low + (high - low + 1) * i // parts for i in range(parts + 1)]
    tasks = [(path, bounds[i], bounds[i + 1] - 1, *args) for i in range(parts)]
    with ProcessPoolExecutor(parts, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(fn, tasks))


def parts_for(db: Db, events: int, workers: int | None) -> int:
    """How many processes to split a read of `events` events into: `workers` if given, else one per CPU
    while each gets PARALLEL_MIN_EVENTS; always 1 unless `db` is a file path (a connection cannot be
    shared with other processes)."""
    if not isinstance(db, str | Path) or events <= 0:
        return 1
    if workers is not None:
        return max(1, min(workers, events))
    return max(1, min(os.cpu_count() or 1, events // PARALLEL_MIN_EVENTS))


def verify_log_raw(db: Db, *, workers: int | None = None) -> dict[str, tuple[int, ChainProblem | None]]:
    """`verify_stream_raw` for every stream of the log: {stream: (count, first problem or None)}.

    One pass over the table in seq order (a sequential read, however the streams interleave), keeping each
    stream's expected version and link. A stream whose events, taken in seq order, are versions 1..n that
    link and hash correctly is exactly a stream the per-stream check passes; any other stream is checked
    again with `verify_stream_raw`, so its count and first problem are the reference's.

    A database file given by path is cut into `workers` ranges of seq (default: one per CPU, when each
    gets at least PARALLEL_MIN_EVENTS) checked by as many processes; the ranges are then joined stream by
    stream: where a stream enters a range, it must carry on from where the previous range left it.
    """
    with connect(db) as conn:
        low, high, n = conn.execute("SELECT MIN(seq), MAX(seq), COUNT(*) FROM ledger_event").fetchone()
        if n == 0:
            return {}
        parts = parts_for(db, n, workers)
        if parts > 1:
            segments = in_seq_ranges(_scan_file, str(db), low, high, parts)
        else:
            segments = [_scan(conn, low, high)]
        counts, bad = _join(segments)
        return {
            stream: verify_stream_raw(conn, stream) if stream in bad else (counts[stream], None) for stream in counts
        }


# A stream's part of one seq range: (its first version, that event's prev_hash, the Link after its last).
Segment = dict[str, tuple[int, str, Link]]


def _scan_file(task: tuple[str, int, int]) -> Segment:
    path, low, high = task
    with connect(path) as conn:
        return _scan(conn, low, high)


def _scan(conn: sqlite3.Connection, low: int, high: int) -> Segment:
    """Walk every stream met in seq range low..high, each from where it enters the range (_join checks
    that it follows on from the range before)."""
    return scan(conn.execute(_LOG_SQL, (low, high)))


def _join(segments: list[Segment]) -> tuple[dict[str, int], set[str]]:
    """Events checked per stream (sorted by stream) and the streams that went wrong somewhere."""
    ends: dict[str, tuple[int, str]] = {}  # stream -> (last version, its hash) so far
    counts: dict[str, int] = {}
    bad: set[str] = set()
    for segment in segments:
        for stream, (first, first_prev, link) in segment.items():
            if (first - 1, first_prev) != ends.get(stream, (0, GENESIS)) or link.bad:
                bad.add(stream)
            ends[stream] = (link.version, link.last_hash)
            counts[stream] = counts.get(stream, 0) + link.count
    return dict(sorted(counts.items())), bad


def read_types_raw(db: Db, stream: str, types: tuple[str, ...]) -> list[tuple[str, str]]:
    """(type, payload) of the stream's events of the given types, in version order.

    The type test is written `+type` so SQLite walks the (stream, version) index instead of the type index.
    """
    marks = ", ".join("?" for _ in types)
    sql = f"SELECT type, payload FROM ledger_event WHERE stream = ? AND +type IN ({marks}) ORDER BY version"
    with connect(db) as conn:
        return conn.execute(sql, (stream, *types)).fetchall()
