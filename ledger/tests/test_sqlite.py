"""ledger.sqlite gives exactly what the ORM path gives: the same count and the same first problem, on good
logs and on tampered ones (the tampering drops the append-only triggers inside the test's transaction)."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from django.db import connection

from bench.eventlog import INSERT_SQL, GeneratedLog
from ledger import chain, store
from ledger import sqlite as fast

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite_only("ledger.sqlite reads SQLite files and connections")]

DROP = ["DROP TRIGGER IF EXISTS ledger_event_no_update", "DROP TRIGGER IF EXISTS ledger_event_no_delete"]


def write_log(n: int = 1500, sessions: int = 2, seed: int = 3) -> GeneratedLog:
    log = GeneratedLog(n, sessions, participants=8, legs=4, seed=seed, settle=True)
    with connection.cursor() as cursor:
        cursor.executemany(INSERT_SQL, list(log.rows()))
    return log


def reference(stream: str):
    return store.verify_chain(store.iter_stream(stream))


def both(stream: str):
    ours = fast.verify_stream_raw(connection, stream)
    assert ours == reference(stream)
    return ours


def tamper(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        for statement in DROP:
            cursor.execute(statement)
        cursor.execute(sql, params)


def nth_seq(stream: str, version: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq FROM ledger_event WHERE stream = %s AND version = %s", [stream, version])
        return cursor.fetchone()[0]


def test_good_log_same_as_the_orm_path():
    log = write_log()
    assert len(log.streams) == 2
    for stream in log.streams:
        count, problem = both(stream)
        assert problem is None
        assert count == store.Event.objects.filter(stream=stream).count()
    assert fast.verify_log_raw(connection) == {s: reference(s) for s in store.streams()}
    assert fast.streams_raw(connection) == store.streams()


def test_whole_seconds_are_stored_without_a_fraction_and_still_verify():
    log = write_log(n=2500, sessions=1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM ledger_event WHERE length(at) = 19")
        assert cursor.fetchone()[0] >= 2  # every 1000th event lands on a whole second
    assert both(log.streams[0]) == (2500, None)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            "UPDATE ledger_event SET payload = replace(payload, '\"quantity\":', '\"quantity\":1') WHERE seq = {seq}",
            "hash",
        ),
        ("UPDATE ledger_event SET prev_hash = '{fake}' WHERE seq = {seq}", "prev_hash"),
        ("DELETE FROM ledger_event WHERE seq = {seq}", "version"),
        ("UPDATE ledger_event SET seq = 999999 WHERE seq = {seq}", "seq"),
        ("UPDATE ledger_event SET at = '2026-02-01 00:00:00' WHERE seq = {seq}", "hash"),
        ("UPDATE ledger_event SET type = 'RFQCancelled' WHERE seq = {seq}", "hash"),
        ("UPDATE ledger_event SET hash = '{fake}' WHERE seq = {seq}", "hash"),
    ],
)
def test_tampered_logs_get_the_same_first_problem(change, reason):
    log = write_log(n=600, sessions=1)
    stream = log.streams[0]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq FROM ledger_event WHERE stream = %s AND type = 'RFQRequested' ORDER BY seq", [stream]
        )
        seq = cursor.fetchall()[3][0]
    tamper(change.format(seq=seq, fake="f" * 64))
    count, problem = both(stream)
    assert fast.verify_log_raw(connection)[stream] == (count, problem)
    assert problem is not None
    assert reason in problem.reason or (reason == "hash" and "edited row" in problem.reason)
    assert count < 600


def test_times_in_other_stored_forms_read_as_the_orm_reads_them():
    """A row written by another client with 'T', an offset or no fraction hashes as the ORM sees it."""
    log = write_log(n=300, sessions=1)
    stream = log.streams[0]
    seqs = [nth_seq(stream, v) for v in (5, 6, 7)]
    tamper(
        "UPDATE ledger_event SET at = replace(at, ' ', 'T') WHERE seq = %s",
        [seqs[0]],
    )
    tamper("UPDATE ledger_event SET at = at || '+00:00' WHERE seq = %s", [seqs[1]])
    tamper("UPDATE ledger_event SET at = substr(at, 1, 19) || '.5' WHERE seq = %s", [seqs[2]])
    count, problem = both(stream)
    assert fast.verify_log_raw(connection)[stream] == (count, problem)
    # The first two still denote the same instant (valid); the third changed the time (caught).
    assert problem is not None and problem.version == 7 and count == 7


def test_db_at_text_matches_format_at():
    for value in [
        dt.datetime(2026, 1, 5, 9, 0, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 5, 9, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    ]:
        stored = str(value.replace(tzinfo=None))
        assert chain.at_text(stored) == store.format_at(value)
    assert chain.at_text("2026-01-05 10:00:00+01:00") == "2026-01-05T09:00:00.000000Z"
    with pytest.raises(ValueError):
        chain.at_text("yesterday")


def log_file(path, rows) -> None:
    """A database file at `path` holding just the event table (triggers left out) with these rows."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'ledger_event'")
        ddl = cursor.fetchone()[0]
    with sqlite3.connect(path) as conn:
        conn.execute(ddl)
        conn.executemany(INSERT_SQL, rows)
    conn.close()


def _log_file(tmp_path, n: int = 900, sessions: int = 3):
    """A generated log, in the test database and in a file of its own: (log, path, sorted seqs)."""
    log = write_log(n=n, sessions=sessions)
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, stream, version, type, payload, at, prev_hash, hash FROM ledger_event")
        rows = cursor.fetchall()
    path = tmp_path / "log.sqlite3"
    log_file(path, rows)
    return log, path, [r[0] for r in sorted(rows)]


def test_a_database_file_by_path(tmp_path):
    """Opened by path (read-only, its own connection): same answer as over Django's connection."""
    log, path, _ = _log_file(tmp_path, n=400, sessions=2)
    for stream in log.streams:
        assert fast.verify_stream_raw(path, stream) == reference(stream)
        assert fast.verify_stream_raw(str(path), stream) == reference(stream)
    assert fast.verify_log_raw(path) == {s: reference(s) for s in log.streams}
    with pytest.raises(FileNotFoundError):
        fast.verify_stream_raw(tmp_path / "missing.sqlite3", "x")


def test_events_appended_by_the_store_verify_the_same():
    """Rows written by ledger.store.append itself (not the generator)."""
    from django.db import transaction

    with transaction.atomic():
        for i in range(5):
            store.append("misc-1", "Noted", {"i": i, "text": "caf\u00e9 \u2603"})
    assert both("misc-1") == (5, None)
    assert fast.verify_stream_raw(connection, "no-such-stream") == (0, None)


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_a_file_checked_by_several_processes_gives_the_same_answer(tmp_path, workers):
    log, path, _ = _log_file(tmp_path)
    assert fast.verify_log_raw(path, workers=workers) == {s: reference(s) for s in log.streams}


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE ledger_event SET payload = payload || ' ' WHERE seq = {seq}",
        "DELETE FROM ledger_event WHERE seq = {seq}",
        "UPDATE ledger_event SET prev_hash = '{fake}' WHERE seq = {seq}",
        "UPDATE ledger_event SET hash = '{fake}' WHERE seq = {seq}",
    ],
)
@pytest.mark.parametrize("where", ["first", "range_start", "range_end", "last"])
def test_tampering_at_the_edges_of_the_ranges_is_found_by_several_processes(tmp_path, change, where):
    """Rows at the first, last and cut-point seqs of 3 ranges: the same count and first problem as one pass."""
    _, path, seqs = _log_file(tmp_path)
    low, high = seqs[0], seqs[-1]
    cut = low + (high - low + 1) // 3
    seq = {"first": low, "range_start": cut, "range_end": cut - 1, "last": high}[where]
    with sqlite3.connect(path) as conn:
        conn.execute(change.format(seq=seq, fake="f" * 64))
    conn.close()
    one = fast.verify_log_raw(path, workers=1)
    assert fast.verify_log_raw(path, workers=3) == one
    assert any(problem is not None for _, problem in one.values()) or (where == "last" and "DELETE" in change)
