"""Real threads, real SQLite file, one connection each: racing commands serialise (BEGIN IMMEDIATE), the
losers get a clear Conflict or DomainError, nobody sees "database is locked", and the ledger still
verifies afterwards."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from conftest import create_demo
from ledger.models import Event
from markets import audit, projections, services
from markets.errors import Conflict, DomainError, http_status
from markets.models import RFQ, Quote, Session, Trade

pytestmark = pytest.mark.django_db(transaction=True)

Q = [100_000_000, 60_000_000, 80_000_000, 120_000_000]


def run_together(n: int, fn: Callable[[int], Any]) -> list[tuple[str, Any]]:
    """Start n threads at the same instant; each returns ("ok", value) or ("error", exception)."""
    barrier = threading.Barrier(n)
    results: list[tuple[str, Any]] = [("missing", None)] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = ("ok", fn(i))
        except BaseException as exc:  # reported and asserted on in the main thread
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,), name=f"racer-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return results


def errors_of(results) -> list[Exception]:
    return [value for kind, value in results if kind == "error"]


def assert_only_domain_errors(results) -> None:
    for exc in errors_of(results):
        assert isinstance(exc, DomainError), f"{type(exc).__name__}: {exc}"
        assert "locked" not in str(exc).lower()
        assert exc.code != "busy", exc.message


def assert_sound(sid: str) -> None:
    matrix = projections.holdings_matrix(sid)
    for k, total in enumerate(Q):
        assert sum(row[k] for row in matrix.values()) == total
    assert all(x >= 0 for row in matrix.values() for x in row), matrix
    report = audit.verify_session(sid)
    assert report.ok, report.problems


def test_many_accepts_of_one_quote_fill_it_exactly_once(users):
    create_demo(users)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")

    results = run_together(12, lambda i: services.accept_quote(users["alice"], quote.id))

    assert_only_domain_errors(results)
    winners = [value for kind, value in results if kind == "ok"]
    assert len(winners) == 1
    losers = errors_of(results)
    assert len(losers) == 11
    for exc in losers:
        assert type(exc) is Conflict
        assert exc.code in {"rfq_closed", "quote_not_live"} and http_status(exc) == 409, exc.message
    assert Trade.objects.count() == 1
    assert Event.objects.filter(type="TradeExecuted").count() == 1
    assert projections.holdings_matrix("demo")["alice"] == [15_000_000, 21_200_000, 20_000_000, 30_000_000]
    assert RFQ.objects.get(id=rfq.id).status == RFQ.Status.FILLED
    assert_sound("demo")


def test_concurrent_accepts_cannot_overdraw_the_taker(users):
    create_demo(users)
    # alice holds 25 AAPL and asks to give 5 AAPL eight times: only five can fill.
    quotes = []
    for i in range(8):
        rfq = services.request_rfq(users["alice"], "demo", "AAPL", "ORCL", "5")
        quotes.append(services.provide_quote(users["mm" if i % 2 else "mm2"], rfq.id, "0.1"))

    results = run_together(8, lambda i: services.accept_quote(users["alice"], quotes[i].id))

    assert_only_domain_errors(results)
    assert sum(kind == "ok" for kind, _ in results) == 5
    losers = errors_of(results)
    assert len(losers) == 3
    for exc in losers:
        assert (exc.code, http_status(exc)) == ("insufficient_inventory", 409), exc.message
        assert "taker holds 0.000000 AAPL" in exc.message
    assert projections.holdings_matrix("demo")["alice"][0] == 0
    assert Trade.objects.count() == 5
    assert_sound("demo")


def test_concurrent_accepts_cannot_overdraw_the_maker(users):
    create_demo(users)
    # mm holds 15 NVDA; eight RFQs from two takers each want 5 NVDA from mm: only three can fill.
    quotes = []
    for i in range(8):
        taker = "alice" if i % 2 else "bob"
        rfq = services.request_rfq(users[taker], "demo", "META", "NVDA", "2.5")
        quotes.append((taker, services.provide_quote(users["mm"], rfq.id, "2")))

    results = run_together(8, lambda i: services.accept_quote(users[quotes[i][0]], quotes[i][1].id))

    assert_only_domain_errors(results)
    assert sum(kind == "ok" for kind, _ in results) == 3
    for exc in errors_of(results):
        assert (exc.code, http_status(exc)) == ("insufficient_inventory", 409), exc.message
        assert "maker holds 0.000000 NVDA" in exc.message
    assert projections.holdings_matrix("demo")["mm"][1] == 0
    assert_sound("demo")


def test_accept_cancel_and_withdraw_race_to_one_consistent_outcome(users):
    create_demo(users)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    actions = [
        lambda: services.accept_quote(users["alice"], quote.id),
        lambda: services.cancel_rfq(users["alice"], rfq.id),
        lambda: services.withdraw_quote(users["mm"], quote.id),
        lambda: services.provide_quote(users["mm2"], rfq.id, "0.7"),
    ] * 3

    results = run_together(len(actions), lambda i: actions[i]())

    assert_only_domain_errors(results)
    for exc in errors_of(results):
        assert exc.code in {"rfq_closed", "quote_not_live"}, exc.message
    rfq.refresh_from_db()
    quote.refresh_from_db()
    trades = Trade.objects.filter(rfq=rfq).count()
    if rfq.status == RFQ.Status.FILLED:
        assert trades == 1
    else:
        assert trades == 0
        assert rfq.status == RFQ.Status.CANCELLED or quote.status == Quote.Status.WITHDRAWN
    # Once the RFQ is closed nothing on it is live.
    if rfq.status != RFQ.Status.OPEN:
        assert not Quote.objects.filter(rfq=rfq, status=Quote.Status.LIVE).exists()
    assert_sound("demo")


def test_racing_creations_of_one_session_id_make_one_session(users):
    results = run_together(
        8,
        lambda i: services.create_session(users["org"], session_id="race", legs=["A", "B"], q=[i + 1, 1]),
    )
    assert_only_domain_errors(results)
    assert sum(kind == "ok" for kind, _ in results) == 1
    for exc in errors_of(results):
        assert (exc.code, http_status(exc)) == ("session_exists", 409)
    assert Session.objects.filter(id="race").count() == 1
    assert Counter(Event.objects.filter(stream="session-race").values_list("type", flat=True)) == {
        "SessionCreated": 1,
        "ParticipantJoined": 1,
    }
    assert audit.verify_session("race").ok


def test_traffic_on_two_sessions_at_once_verifies(users, capsys):
    create_demo(users, "one")
    create_demo(users, "two")
    work = []
    for sid in ("one", "two"):
        for taker, give in (("alice", "AAPL"), ("bob", "META")):
            rfq = services.request_rfq(users[taker], sid, give, "ORCL", "3")
            work.append((taker, services.provide_quote(users["mm"], rfq.id, "1.25")))

    def act(i: int):
        taker, quote = work[i % len(work)]
        if i < len(work):
            return services.accept_quote(users[taker], quote.id)
        return services.request_rfq(users[taker], quote.rfq.session_id, "NVDA", "AAPL", "1")

    results = run_together(len(work) * 2, act)

    assert_only_domain_errors(results)
    assert not errors_of(results)
    assert Trade.objects.count() == 4
    seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gaps, no duplicates
    call_command("verify_ledger")
    assert "verified 2 session(s)" in capsys.readouterr().out
