"""Trading stops at t2 by itself, quotes expire in the log, and what trading leaves open is closed by the
same event stream: the commands, the projection, the floor and the API agree at every instant."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, services
from markets.errors import Conflict, DomainError, Forbidden
from markets.models import RFQ, Quote, Session, Trade
from markets.tests.test_api import Api
from markets.tests.test_services import assert_refused
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 6, 3, 9, 0, tzinfo=dt.UTC)
T2 = T0 + dt.timedelta(minutes=30, microseconds=250_000)
PRICES = {"AAPL": 190_000_000, "NVDA": 120_000_000, "META": 500_000_000, "ORCL": 110_000_000}


@pytest.fixture
def api(client, users):
    from markets import tokens

    return Api(client, {name: tokens.create_token(user, name="tests")[1] for name, user in users.items()})


def tick_all(session_id: str, at: dt.datetime, prices: dict[str, int] = PRICES) -> None:
    Tick.objects.bulk_create(
        Tick(session_id=session_id, symbol=leg, at=at, price=price, source="test") for leg, price in prices.items()
    )


def timed(users, sid: str = "tm"):
    """A timed session open at T0, t2 = T2, with alice's RFQ and mm's quote live for an hour."""
    clock.set_time(T0)
    create_demo(users, sid, end_mode="timed", t2=T2)
    rfq = services.request_rfq(users["alice"], sid, "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62", 3600)
    return rfq, quote


def types(sid: str) -> list[str]:
    return list(Event.objects.filter(stream=f"session-{sid}").order_by("version").values_list("type", flat=True))


def test_an_accept_40_seconds_after_t2_is_refused_with_nothing_running(users):
    """The oracle stopped before t2; nobody recorded anything. The command itself knows the time."""
    _rfq, quote = timed(users)
    clock.set_time(T2 + dt.timedelta(seconds=40))
    assert_refused(
        lambda: services.accept_quote(users["alice"], quote.id),
        Conflict,
        "trading_closed",
        409,
        "settles at the fixing",
    )
    assert Trade.objects.count() == 0
    # One base unit of time before t2 it still trades; at t2 exactly it does not.
    clock.set_time(T2 - dt.timedelta(microseconds=1))
    services.request_rfq(users["bob"], "tm", "META", "ORCL", "1")
    clock.set_time(T2)
    assert_refused(
        lambda: services.request_rfq(users["bob"], "tm", "META", "ORCL", "1"), Conflict, "trading_closed", 409, "t2"
    )


def test_between_t2_and_the_scheduler_every_reader_says_trading_closed(users, client, api):
    _rfq, quote = timed(users)
    clock.set_time(T2 + dt.timedelta(seconds=1))
    assert Session.objects.get(id="tm").status == "open"  # nothing recorded yet...
    session = api.get("/sessions/tm").json()
    assert session["status"] == "closed"  # ...but nobody is told it is open
    assert session["status_note"].startswith(
        "trading closed, settles at the fixing (last, t2 2030-06-03 09:30:00.250000"
    )
    assert [s["id"] for s in api.get("/sessions?status=closed").json()] == ["tm"]
    client.force_login(users["alice"])
    page = client.get("/sessions/tm/").content.decode()
    assert 'data-testid="trading-closed"' in page and "Trading closed at t2" in page
    assert f'data-testid="accept-{quote.id}"' not in page and 'data-testid="rfq-form"' not in page
    listing = client.get("/").content.decode()
    assert "trading closed, settles at the fixing" in listing


def test_the_scheduler_closes_trading_at_t2_and_settles_at_the_fixing(users, client, api):
    rfq, quote = timed(users)
    tick_all("tm", T0 + dt.timedelta(minutes=5))
    clock.set_time(T2 + dt.timedelta(seconds=2))
    call_command("settle", "--due", stdout=StringIO())
    assert types("tm")[-2:] == ["TradingClosed", "SessionSettled"]
    assert RFQ.objects.get(id=rfq.id).status == "lapsed"
    assert Quote.objects.get(id=quote.id).status == "lapsed"
    listed = api.get("/sessions/tm/rfqs").json()
    assert [(r["status"], [q["status"] for q in r["quotes"]]) for r in listed] == [("lapsed", ["lapsed"])]
    client.force_login(users["alice"])
    page = client.get("/sessions/tm/").content.decode()
    assert "data-expires" not in page and "Accept</button>" not in page
    assert audit.verify_session("tm").ok


def test_a_session_the_scheduler_cannot_settle_still_closes_and_says_why(users, api):
    timed(users)
    tick_all("tm", T0 + dt.timedelta(minutes=5), {"AAPL": 1_000_000, "NVDA": 1_000_000, "META": 1_000_000})
    clock.set_time(T2 + dt.timedelta(seconds=1))
    outcomes = dict(services.run_due())
    assert outcomes["tm"].startswith(
        "not settled: Cannot settle tm: no price for ORCL at or before 2030-06-03 09:30:00.250000 UTC"
    )
    session = Session.objects.get(id="tm")
    assert session.status == "closed" and session.closed_at == T2
    assert "09:30:00.250000" in session.waiting_reason  # the fraction of t2 is kept
    assert types("tm")[-2:] == ["TradingClosed", "SettlementWaiting"]
    assert api.get("/sessions/tm").json()["status_note"].endswith(f"waiting: {session.waiting_reason}")
    # The organiser can still settle it by hand at given prices (manual settlement is allowed here).
    services.settle_session(users["org"], "tm", prices={leg: "1" for leg in PRICES})
    assert Session.objects.get(id="tm").status == "settled"
    assert audit.verify_session("tm").ok


def test_a_manual_settlement_closes_what_trading_left_open(users, api):
    clock.set_time(T0)
    create_demo(users)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    live = services.provide_quote(users["mm"], rfq.id, "0.62", 600)
    services.settle_session(users["org"], "demo", prices={leg: "1" for leg in PRICES})
    assert (RFQ.objects.get(id=rfq.id).status, Quote.objects.get(id=live.id).status) == ("lapsed", "lapsed")
    body = api.get("/sessions/demo/rfqs").json()
    assert body[0]["status"] == "lapsed" and body[0]["quotes"][0]["status"] == "lapsed"
    assert audit.verify_session("demo").ok


def test_a_scheduled_session_opens_late_only_while_t2_is_ahead(users):
    clock.set_time(T0)
    create_demo(users, "late", open_it=False, start_mode="scheduled", t1=T0 + dt.timedelta(minutes=1),
                end_mode="timed", t2=T0 + dt.timedelta(minutes=10))  # fmt: skip
    create_demo(users, "missed", open_it=False, start_mode="scheduled", t1=T0 + dt.timedelta(minutes=1),
                end_mode="timed", t2=T0 + dt.timedelta(minutes=5))  # fmt: skip
    clock.set_time(T0 + dt.timedelta(minutes=7))  # nothing ran at t1
    outcomes = dict(services.open_due_sessions())
    assert outcomes["late"] == "opened"
    assert outcomes["missed"].startswith("cancelled: t2 (2030-06-03 09:05:00 UTC) passed before the session could open")
    assert Session.objects.get(id="late").status == "open"
    missed = Session.objects.get(id="missed")
    assert missed.status == "cancelled" and types("missed")[-1] == "SessionCancelled"
    assert not missed.holdings.exists()  # nothing was ever allocated
    assert_refused(
        lambda: services.request_rfq(users["alice"], "missed", "AAPL", "NVDA", "1"),
        Conflict,
        "session_cancelled",
        409,
        "was cancelled: it never traded",
    )
    assert services.open_due_sessions() == []  # a cancelled session is not tried again
    assert audit.verify_session("missed").ok


def test_the_organiser_may_cancel_a_session_that_has_not_opened(users):
    create_demo(users, "pre", open_it=False)
    assert_refused(lambda: services.cancel_session(users["alice"], "pre"), Forbidden, "not_organiser", 403, "organiser")
    services.cancel_session(users["org"], "pre", "room booked twice")
    session = Session.objects.get(id="pre")
    assert (session.status, session.waiting_reason) == ("cancelled", "room booked twice")
    create_demo(users, "on")
    assert_refused(lambda: services.cancel_session(users["org"], "on"), Conflict, "not_cancellable", 409, "is open")


def test_an_expired_quote_is_recorded_expired_and_cannot_be_withdrawn(users, client, api):
    clock.set_time(T0)
    create_demo(users)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62", 30)
    other = services.provide_quote(users["mm2"], rfq.id, "0.6", 300)
    clock.set_time(T0 + dt.timedelta(seconds=30))
    assert_refused(lambda: services.withdraw_quote(users["mm"], quote.id), Conflict, "quote_expired", 409, "expired")
    statuses = [q["status"] for q in api.get("/sessions/demo/rfqs").json()[0]["quotes"]]
    assert statuses == ["expired", "live"]  # by the clock already
    assert dict(services.run_due()) == {"demo": "1 quote expired"}
    assert Quote.objects.get(id=quote.id).status == "expired"  # and now stored so
    assert Quote.objects.get(id=other.id).status == "live"
    assert types("demo")[-1] == "QuotesExpired"
    assert services.run_due() == []  # nothing twice
    client.force_login(users["alice"])
    page = client.get("/sessions/demo/").content.decode()
    assert f'data-testid="accept-{quote.id}"' not in page and f'data-testid="accept-{other.id}"' in page
    assert f"quote {quote.id} expired" in page  # the log says so
    assert_refused(lambda: services.accept_quote(users["alice"], quote.id), Conflict, "quote_expired", 409, "expired")
    assert_refused(lambda: services.withdraw_quote(users["mm"], quote.id), Conflict, "quote_expired", 409, "expired")
    assert audit.verify_session("demo").ok


def test_a_maker_cannot_quote_what_it_could_never_deliver_but_the_accept_checks_again(users):
    clock.set_time(T0)
    create_demo(users)  # mm holds 15 NVDA
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "1.5", 600)  # 15 NVDA: exactly what mm holds
    drain = services.request_rfq(users["bob"], "demo", "META", "NVDA", "1")
    services.accept_quote(users["bob"], services.provide_quote(users["mm"], drain.id, "1", 600).id)
    assert_refused(
        lambda: services.accept_quote(users["alice"], quote.id),
        DomainError,
        "insufficient_inventory",
        409,
        "the maker holds 14.000000 NVDA, needs 15.000000",
    )
