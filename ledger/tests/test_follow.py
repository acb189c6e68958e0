"""Following a table whose writers commit out of order (PostgreSQL): the gap-safe rule delivers every
committed row exactly once and forgets only the gaps no transaction can fill any more. The rule is pure,
so it is checked against a model of PostgreSQL: transactions take ids (xids) and keys (a sequence), then
commit or roll back in any order, while a follower reads under snapshots built as PostgreSQL builds them
(xmax one past the newest completed id; xip only the ids in flight below it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.postgres import Position, gap_safe, new_gaps


class ModelDatabase:
    """Transactions with xids from a counter and keys from a sequence; rows visible once committed."""

    def __init__(self) -> None:
        self.next_xid = 100
        self.next_key = 1
        self.running: dict[int, list[int]] = {}  # xid -> keys it inserted
        self.latest_completed = 99
        self.committed: set[int] = set()
        self.rolled_back: set[int] = set()

    def begin_and_insert(self, rows: int) -> int:
        xid = self.next_xid  # the id comes first, then the keys (ledger.store.append asks for it)
        self.next_xid += 1
        keys = list(range(self.next_key, self.next_key + rows))
        self.next_key += rows
        self.running[xid] = keys
        return xid

    def end(self, xid: int, commit: bool) -> None:
        keys = self.running.pop(xid)
        (self.committed if commit else self.rolled_back).update(keys)
        self.latest_completed = max(self.latest_completed, xid)

    def xmin(self) -> int:
        """pg_snapshot_xmin: the oldest id in the snapshot's xip, or its xmax when xip is empty. A
        transaction with an id at or above xmax is in flight too, but not listed."""
        xmax = self.latest_completed + 1
        return min([x for x in self.running if x < xmax], default=xmax)

    def own_xid(self) -> int:
        """pg_current_xact_id() of the follower: the next id (its transaction writes nothing, ends at once)."""
        xid = self.begin_and_insert(0)
        self.end(xid, commit=True)
        return xid

    def read(self, position: Position) -> list[int]:
        return sorted(k for k in self.committed if k > position.last or k in position.gaps)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.integers(1, 3)),
        st.tuples(st.just("end"), st.integers(0, 20), st.booleans()),
        st.tuples(st.just("read")),
    ),
    max_size=60,
)


@settings(deadline=None, max_examples=300)
@given(steps=steps)
def test_every_committed_row_is_delivered_once_and_dead_gaps_are_forgotten(steps):
    db = ModelDatabase()
    position = Position(0)
    delivered: list[int] = []

    def read() -> None:
        nonlocal position
        xmin = db.xmin()
        keys = db.read(position)
        delivered.extend(keys)
        horizon = db.own_xid() if new_gaps(position, keys) else xmin
        position = gap_safe(position, keys, xmin, horizon)

    for step in steps:
        if step[0] == "insert":
            db.begin_and_insert(step[1])
        elif step[0] == "end" and db.running:
            xid = sorted(db.running)[step[1] % len(db.running)]
            db.end(xid, commit=step[2])
        elif step[0] == "read":
            read()
    for xid in list(db.running):  # everything ends, the follower reads until it has seen it all
        db.end(xid, commit=True)
    read()
    read()
    assert sorted(delivered) == sorted(db.committed)
    assert len(delivered) == len(set(delivered)), "a row was delivered twice"
    assert position.gaps == {}, "a gap nobody can fill is still being read"


def test_sqlite_keeps_no_gaps():
    """Rows become visible in key order there: a key never seen below the top will never come."""
    assert gap_safe(Position(3), [4, 6], None, None) == Position(6)


def test_a_gap_is_kept_while_the_transaction_that_could_fill_it_runs():
    seen = gap_safe(Position(0), [1, 3], xmin=10, horizon=12)  # key 2 missing; xids 10 and 11 in flight
    assert seen == Position(3, {2: 12})
    assert gap_safe(seen, [], xmin=11, horizon=13) == seen  # still something in flight from before
    assert gap_safe(seen, [2], xmin=11, horizon=13) == Position(3)  # filled
    assert gap_safe(seen, [], xmin=12, horizon=14) == Position(3)  # all of those ended: it will never come
    assert gap_safe(Position(0), [1, 3], xmin=20, horizon=20) == Position(3)  # nothing in flight: 2 is dead


def test_a_transaction_above_the_snapshots_xmax_still_counts():
    """The case PostgreSQL's snapshot does not list: key 1 belongs to xid 12, still running; key 2 to xid 11,
    committed. The snapshot's xmax is 12, so its xip is empty and its xmin is 12: judged by the snapshot
    alone, nothing is in flight. The follower's own id (13) keeps the gap until 12 has ended."""
    db = ModelDatabase()
    db.next_xid = 13
    db.running = {11: [2], 12: [1]}  # 11 took its id first, 12 its key first
    db.next_key = 3
    db.end(11, commit=True)
    assert db.xmin() == 12 and db.read(Position(0)) == [2]
    keys = db.read(Position(0))
    assert new_gaps(Position(0), keys)
    seen = gap_safe(Position(0), keys, db.xmin(), db.own_xid())
    assert seen == Position(2, {1: 13})
    assert gap_safe(seen, [], db.xmin(), db.xmin()) == seen  # 12 still runs
    db.end(12, commit=True)
    assert db.read(seen) == [1]


def test_new_gaps():
    assert not new_gaps(Position(3), [])
    assert not new_gaps(Position(3), [4, 5])
    assert not new_gaps(Position(3, {2: 9}), [2, 4])
    assert new_gaps(Position(3), [5])
    assert new_gaps(Position(3, {2: 9}), [2, 4, 6])


@pytest.mark.parametrize("xmin, kept", [(5, True), (12, False)])
def test_reading_nothing_still_ages_gaps(xmin, kept):
    position = gap_safe(Position(7, {5: 12}), [], xmin=xmin, horizon=20)
    assert (5 in position.gaps) is kept and position.last == 7


@pytest.mark.postgres_only("transaction ids are PostgreSQL's")
@pytest.mark.parametrize("table, column", [("ledger_event", "seq"), ("oracle_tick", "id")])
def test_drawing_a_key_gives_the_transaction_its_id_first(db, table, column):
    """What the rule above stands on, true of every writer: the key column's default asks for the
    transaction's id before it draws from the sequence."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_default FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
            [table, column],
        )
        (default,) = cursor.fetchone()
        cursor.execute("SELECT pg_current_xact_id_if_assigned() IS NULL")
        assert cursor.fetchone() == (True,)  # a fresh transaction (the test's) that has written nothing
        cursor.execute(f"SELECT {default}")
        cursor.execute("SELECT pg_current_xact_id_if_assigned() IS NULL")
        assert cursor.fetchone() == (False,)


def _start() -> Position:
    from django.db.models import Max

    from ledger.models import Event
    from ledger.postgres import begin

    events = Event.objects.all()
    return begin(
        lambda: events.aggregate(m=Max("seq"))["m"],
        lambda k: list(events.filter(seq__gt=k).values_list("seq", flat=True)),
    )


def _after(position: Position) -> list:
    from django.db.models import Q

    from ledger.models import Event

    return list(Event.objects.filter(Q(seq__gt=position.last) | Q(seq__in=list(position.gaps))).order_by("seq"))


@pytest.mark.django_db(transaction=True)
def test_a_follower_starts_past_the_newest_row():
    from django.db import transaction

    from ledger import store
    from ledger.postgres import follow

    assert _start() == Position(0)
    with transaction.atomic():
        first = store.append("follow-a", "Thing", {})
        second = store.append("follow-b", "Thing", {})
    position = _start()
    assert position.last == second.seq > first.seq and not position.gaps
    with transaction.atomic():
        third = store.append("follow-a", "Thing", {})
    rows, position = follow(_after, lambda e: e.seq, position)
    assert [e.seq for e in rows] == [third.seq] and position.last == third.seq


@contextmanager
def in_flight_append() -> Iterator[dict]:
    """An append whose transaction has drawn its seq and stays open until the block ends ({"event": it});
    the block commits a later append meanwhile, as another session's writer would."""
    import threading

    from django.db import connection, transaction

    from ledger import store

    drew, release = threading.Event(), threading.Event()
    slow: dict = {}

    def in_flight() -> None:
        try:
            with transaction.atomic():
                slow["event"] = store.append("follow-slow", "Thing", {})
                drew.set()
                assert release.wait(10)
        finally:
            connection.close()

    writer = threading.Thread(target=in_flight)
    writer.start()
    assert drew.wait(10)
    try:
        yield slow
    finally:
        release.set()
        writer.join(10)


@pytest.mark.postgres_only("transactions commit out of key order on PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_follower_started_while_a_lower_key_is_in_flight_still_delivers_it():
    """A transaction drew its seq and is still running when a later one commits and a follower starts
    (a web process's first socket): the follower starts past the newest row but keeps the missing seq as a
    gap, and delivers the row once its transaction commits."""
    from django.db import transaction

    from ledger import store
    from ledger.postgres import follow

    with in_flight_append() as slow:
        with transaction.atomic():
            fast = store.append("follow-fast", "Thing", {})
        position = _start()
        assert position.last == fast.seq and slow["event"].seq in position.gaps
    rows, position = follow(_after, lambda e: e.seq, position)
    assert [e.stream for e in rows] == ["follow-slow"] and not position.gaps


@given(
    last=st.integers(0, 10**6),
    run=st.integers(0, 50),
    xmin=st.integers(1, 10**6),
    horizon=st.integers(1, 10**6),
)
def test_a_run_of_keys_without_a_hole_needs_no_snapshot(last, run, xmin, horizon):
    """Why `follow` may read in one statement when the follower has no gap and the keys it finds follow on
    from `last`: the rule gives the same position whatever the snapshot's xmin and the horizon."""
    keys = list(range(last + 1, last + 1 + run))
    assert gap_safe(Position(last), keys, xmin, horizon) == Position(keys[-1] if keys else last)


@pytest.mark.django_db(transaction=True)
def test_a_follower_without_gaps_reads_in_one_statement():
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from ledger import store
    from ledger.postgres import follow

    with transaction.atomic():
        store.append("follow-a", "Thing", {})
    _, position = follow(_after, lambda e: e.seq, _start())  # the keys other tests drew age out
    assert not position.gaps
    with CaptureQueriesContext(connection) as reads:
        rows, position = follow(_after, lambda e: e.seq, position)
    assert rows == [] and len(reads) == 1
    with transaction.atomic():
        first = store.append("follow-a", "Thing", {})
        second = store.append("follow-a", "Thing", {})
    with CaptureQueriesContext(connection) as reads:
        rows, position = follow(_after, lambda e: e.seq, position)
    assert [e.seq for e in rows] == [first.seq, second.seq] and position == Position(second.seq)
    assert len(reads) == 1


@pytest.mark.postgres_only("transactions commit out of key order on PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_a_hole_seen_by_the_one_statement_read_is_read_again_under_a_snapshot_and_kept():
    """A follower with no gap reads seq 2 while seq 1 is still in flight: the hole sends it to the snapshot
    read, which keeps 1 as a gap, and 1 is delivered once its transaction commits."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from ledger import store
    from ledger.postgres import follow

    with transaction.atomic():
        store.append("follow-a", "Thing", {})
    _, position = follow(_after, lambda e: e.seq, _start())  # the keys other tests drew age out
    assert not position.gaps
    with in_flight_append() as slow:
        with transaction.atomic():
            fast = store.append("follow-fast", "Thing", {})
        with CaptureQueriesContext(connection) as reads:
            rows, position = follow(_after, lambda e: e.seq, position)
        assert [e.seq for e in rows] == [fast.seq] and position.last == fast.seq
        assert slow["event"].seq in position.gaps
        assert len(reads) > 2  # the one-statement read, then the snapshot's transaction
    rows, position = follow(_after, lambda e: e.seq, position)
    assert [e.stream for e in rows] == ["follow-slow"] and not position.gaps
