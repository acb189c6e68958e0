"""Writers of one process queue for SQLite's write lock on a lock of their own (ledger.turns), woken
when the one before commits, instead of sleeping in SQLite's busy handler; real threads, a real file."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from ledger import turns
from markets import services
from markets.models import RFQ

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.sqlite_only("PostgreSQL's writers queue on their row locks: the turn is SQLite's"),
]


def _in_thread(fn, done: list) -> threading.Thread:
    def run() -> None:
        try:
            done.append(fn())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_command_waits_for_the_turn_and_runs_the_moment_it_is_free(users, demo):
    done: list = []
    with turns.writer_turn():
        thread = _in_thread(lambda: services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "1"), done)
        thread.join(timeout=0.5)
        assert thread.is_alive() and not done  # queued behind this thread's turn, nothing written
        assert not RFQ.objects.filter(session_id="demo").exists()
    thread.join(timeout=10)
    assert len(done) == 1 and RFQ.objects.filter(session_id="demo").count() == 1


def test_eight_threads_accepting_at_once_all_trade_and_none_is_busy(users, demo):
    """Each of eight threads accepts its own quote at the same instant: eight trades, no 409 busy."""
    quotes = []
    for k in range(8):
        rfq = services.request_rfq(users["alice" if k % 2 else "bob"], "demo", "AAPL", "NVDA", "0.1")
        quotes.append((rfq.taker.user, services.provide_quote(users["mm"], rfq.id, "0.5").id))
    start = threading.Barrier(8)
    done: list = []
    errors: list = []

    def accept(user, quote_id):
        start.wait()
        try:
            return services.accept_quote(user, quote_id)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [_in_thread(lambda u=u, q=q: accept(u, q), done) for u, q in quotes]
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len([t for t in done if t is not None]) == 8


def test_the_turn_is_reentrant_in_one_thread(monkeypatch):
    """A command inside a transaction that holds the turn takes it again (a plain lock would wait, then
    refuse as "database is locked")."""
    monkeypatch.setattr(turns, "WAIT_SECONDS", 0.2)
    with turns.writer_turn(), turns.writer_turn():
        entered = True
    assert entered
