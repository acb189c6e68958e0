"""The event store: appends chain by hash, and the database itself refuses to rewrite history (the
verifier that finds a rewrite done behind the triggers' back is tested from the market's side, in
markets/tests/test_audit.py)."""

from __future__ import annotations

import datetime as dt
import importlib
from contextlib import contextmanager

import pytest
from django.db import IntegrityError, connection, transaction

from ledger import store
from ledger.models import Event

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("ledger.migrations.0001_initial")
T0 = dt.datetime(2030, 6, 1, 15, 0, tzinfo=dt.UTC)


@contextmanager
def behind_the_triggers_back():
    """Drop the append-only triggers, let the test tamper, and put them back (as an attacker with the
    database file would). The test's transaction rolls all of it back afterwards anyway."""
    create, drop = MIGRATION.trigger_sql(connection.vendor)
    with connection.cursor() as cursor:
        for sql in drop:
            cursor.execute(sql)
    try:
        yield connection.cursor()
    finally:
        with connection.cursor() as cursor:
            for sql in create:
                cursor.execute(sql)


def append_three(stream: str = "s-1") -> list[Event]:
    with transaction.atomic():
        return [store.append(stream, "Thing", {"n": i, "text": "é"}, at=T0) for i in range(3)]


def verify(stream: str):
    return store.verify_chain(store.iter_stream(stream))


# ---------------------------------------------------------------- appending


def test_appends_are_versioned_and_hash_chained():
    events = append_three()
    assert [e.version for e in events] == [1, 2, 3]
    assert events[0].prev_hash == store.GENESIS
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:2]]
    for stored in Event.objects.filter(stream="s-1"):
        assert stored.hash == store.compute_hash(
            stored.prev_hash, "s-1", stored.version, "Thing", "2030-06-01T15:00:00.000000Z", stored.payload
        )
    assert store.head("s-1").version == 3
    assert verify("s-1") == (3, None)
    assert [e.data["n"] for e in store.read("s-1")] == [0, 1, 2]
    assert [e.version for e in store.iter_stream("s-1", chunk=2)] == [1, 2, 3]
    # Other streams start their own chain.
    with transaction.atomic():
        other = store.append("s-2", "Thing", {}, at=T0)
    assert (other.version, other.prev_hash) == (1, store.GENESIS)
    assert store.read(after=events[1].seq) == [events[2], other]


@pytest.mark.django_db(transaction=True)
def test_append_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        store.append("s-1", "Thing", {})
    assert not Event.objects.exists()


def test_append_needs_the_expected_version():
    append_three()
    with pytest.raises(store.ConcurrencyError, match="at version 3, expected 2"), transaction.atomic():
        store.append("s-1", "Thing", {}, expected_version=2)
    assert Event.objects.filter(stream="s-1").count() == 3
    with transaction.atomic():
        assert store.append("s-1", "Thing", {}, expected_version=3).version == 4


def test_canonical_json_is_sorted_compact_ascii_and_refuses_floats():
    assert store.canonical_json({"b": 1, "a": ["é", {"d": None, "c": True}]}) == (
        '{"a":["\\u00e9",{"c":true,"d":null}],"b":1}'
    )
    for bad in ({"x": 0.1}, {"x": [1, {"y": 2.0}]}, {"x": (float("nan"),)}):
        with pytest.raises(TypeError, match="floats are not allowed"):
            store.canonical_json(bad)
    with transaction.atomic(), pytest.raises(TypeError):
        store.append("s-1", "Thing", {"price": 190.1})
    assert not Event.objects.exists()


# ---------------------------------------------------------------- the database refuses to rewrite history


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_event SET payload = '{}' WHERE seq = %s",
        "UPDATE ledger_event SET hash = 'x' WHERE seq = %s",
        "DELETE FROM ledger_event WHERE seq = %s",
        "DELETE FROM ledger_event WHERE seq >= %s",
    ],
)
def test_raw_sql_cannot_change_or_delete_events(sql):
    events = append_three()
    before = list(Event.objects.values_list("seq", "payload", "hash"))
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, [events[1].seq])
    assert list(Event.objects.values_list("seq", "payload", "hash")) == before


def test_the_orm_cannot_change_or_delete_events_either():
    events = append_three()
    with pytest.raises(IntegrityError, match="UPDATE refused"), transaction.atomic():
        Event.objects.filter(seq=events[0].seq).update(type="Edited")
    with pytest.raises(IntegrityError, match="DELETE refused"), transaction.atomic():
        events[2].delete()
    assert verify("s-1") == (3, None)


def test_triggers_are_back_after_tampering():
    events = append_three()
    with behind_the_triggers_back() as cursor:
        cursor.execute("UPDATE ledger_event SET type = 'X' WHERE seq = %s", [events[0].seq])
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        Event.objects.filter(seq=events[1].seq).update(type="Y")
