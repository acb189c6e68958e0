"""The edges an audit found in time: a timed session whose t2 passes before it opens is cancelled (read so
by the clock from t2 on, refused joins and invites, recorded by the scheduler); RFQs and quotes read lapsed
from t2 on, before the scheduler records it, by every reader; a session settled while paused is not
paused. What the readers say before the scheduler runs is what the log says after."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import audit, invite_rules, selectors, services, tokens
from markets.errors import Conflict
from markets.models import RFQ, Invite, Participant, Quote, Session
from markets.selectors.monitor import monitor_context
from markets.services import invites
from markets.tests.test_api import Api, assert_error
from markets.tests.test_time_rules import tick_all, types

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 6, 3, 9, 0, tzinfo=dt.UTC)
T2 = T0 + dt.timedelta(minutes=30)


@pytest.fixture
def api(client, users):
    return Api(client, {name: tokens.create_token(user, name="tests")[1] for name, user in users.items()})


def unopened(users, sid: str = "late") -> Invite:
    """A timed session its organiser never opened: created at T0 with t2 = T2, alice in, an open link."""
    clock.set_time(T0)
    services.create_session(users["org"], session_id=sid, legs=["AAPL", "NVDA"], q=[10, 10], end_mode="timed", t2=T2)
    services.join_session(users["alice"], sid, "trader")
    return invites.create_invite(users["org"], sid, "trader", 5)


def written() -> tuple[int, int, int, int]:
    return Event.objects.count(), Participant.objects.count(), Invite.objects.count(), Session.objects.count()


def test_a_timed_session_not_opened_by_t2_reads_cancelled_and_takes_nobody_in(users, api, client):
    invite = unopened(users)
    clock.set_time(T2 + dt.timedelta(seconds=5))
    assert Session.objects.get(id="late").status == "created"  # nothing recorded yet...
    shown = api.get("/sessions/late").json()
    assert shown["status"] == "cancelled"  # ...but every reader says what it is
    assert (
        shown["status_note"] == "cancelled: t2 (2030-06-03 09:30:00 UTC) passed before the organiser opened the session"
    )
    assert [s["id"] for s in api.get("/sessions?status=cancelled").json()] == ["late"]
    client.force_login(users["bob"])
    assert "passed before the organiser opened the session" in client.get("/").content.decode()
    floor = client.get("/sessions/late/").content.decode()
    assert 'data-testid="cancelled">Cancelled: t2 (2030-06-03 09:30:00 UTC) passed before the organiser' in floor

    before = written()
    body = assert_error(
        api.post("/sessions/late/participants", {"role": "trader"}, who="bob"), 409, "session_not_joinable"
    )
    assert "t2 (2030-06-03 09:30:00 UTC) passed before the organiser opened the session" in body["message"]
    assert_error(api.post("/sessions/late/participants", {"role": "maker", "username": "mm"}, who="org"), 409,
                 "session_not_joinable")  # fmt: skip
    assert_error(api.post("/sessions/late/invites", {"max_uses": 3}, who="org"), 409, "session_not_joinable")
    assert_error(api.post("/sessions/late/invites/bulk", {"names": ["Ann"]}, who="org"), 409, "session_not_joinable")
    with pytest.raises(Conflict) as refused:
        invites.join_by_invite(invite_rules.sign(invite.token_id), "Zoe")
    assert refused.value.code == "session_not_joinable"
    assert written() == before

    # The scheduler records what every reader said: SessionCancelled, with the same reason.
    call_command("settle", "--due", stdout=(out := StringIO()))
    assert (
        "late: cancelled: t2 (2030-06-03 09:30:00 UTC) passed before the organiser opened the session" in out.getvalue()
    )
    stored = Session.objects.get(id="late")
    assert (stored.status, types("late")[-1]) == ("cancelled", "SessionCancelled")
    assert api.get("/sessions/late").json()["status_note"] == shown["status_note"]
    assert audit.verify_session("late").ok


def test_before_t2_the_unopened_session_still_takes_people_in(users, api):
    unopened(users)
    clock.set_time(T2 - dt.timedelta(microseconds=1))
    assert api.get("/sessions/late").json()["status"] == "created"
    assert api.post("/sessions/late/participants", {"role": "trader"}, who="bob").status_code == 201
    call_command("settle", "--due", stdout=StringIO())
    assert Session.objects.get(id="late").status == "created"


def trading(users):
    """An open timed session at T0 with alice's RFQ and two of its quotes: mm's lives past t2, mm2's
    expires a minute before t2."""
    clock.set_time(T0)
    create_demo(users, "tm", end_mode="timed", t2=T2)
    tick_all("tm", T0)
    rfq = services.request_rfq(users["alice"], "tm", "AAPL", "NVDA", "10")
    long = services.provide_quote(users["mm"], rfq.id, "0.62", 3600)
    clock.set_time(T2 - dt.timedelta(minutes=2))
    short = services.provide_quote(users["mm2"], rfq.id, "0.61", 60)
    return rfq, long, short


def as_listed(api) -> list:
    return [(r["status"], [(q["id"], q["status"]) for q in r["quotes"]]) for r in api.get("/sessions/tm/rfqs").json()]


def test_from_t2_open_rfqs_and_live_quotes_read_lapsed_everywhere_before_anything_is_recorded(users, api, client):
    rfq, long, short = trading(users)
    clock.set_time(T2 + dt.timedelta(seconds=3))
    assert RFQ.objects.get().status == "open" and Quote.objects.get(id=long.id).status == "live"  # recorded: nothing
    expected = [("lapsed", [(long.id, "lapsed"), (short.id, "expired")])]
    assert as_listed(api) == expected
    assert api.get("/sessions/tm/rfqs?status=open").json() == []
    assert [r["id"] for r in api.get("/sessions/tm/rfqs?status=lapsed").json()] == [rfq.id]
    session = Session.objects.get(id="tm")
    assert selectors.board_data(session) == []  # the floor's board: no RFQ waits for an accept
    client.force_login(users["alice"])
    assert f'id="rfq-{rfq.id}"' not in client.get("/sessions/tm/").content.decode()
    totals = monitor_context("tm")["totals"]
    assert (totals["rfqs"], totals["quotes"]) == (0, 0)

    # The scheduler records exactly what was read: the quote that expired before t2 expired, the rest lapsed.
    call_command("settle", "--due", stdout=StringIO())
    assert types("tm")[-3:] == ["QuotesExpired", "TradingClosed", "SessionSettled"]
    assert as_listed(api) == expected
    assert (RFQ.objects.get().status, Quote.objects.get(id=long.id).status) == ("lapsed", "lapsed")
    assert Quote.objects.get(id=short.id).status == "expired"
    assert audit.verify_session("tm").ok


def test_a_late_scheduler_expires_only_what_expired_before_t2(users, api):
    """Nothing ran at t2; the first run comes after the long quote's expiry too: it lapsed at t2, with
    trading, and is not recorded as expired now."""
    _rfq, long, short = trading(users)
    clock.set_time(T0 + dt.timedelta(hours=2))
    listed = as_listed(api)
    services.expire_due_quotes()
    services.close_due_sessions()
    assert Quote.objects.get(id=long.id).status == "lapsed" and Quote.objects.get(id=short.id).status == "expired"
    assert as_listed(api) == listed


def test_a_manual_settlement_records_expired_quotes_as_expired(users, api):
    clock.set_time(T0)
    create_demo(users)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "1")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62", 5)
    clock.advance(10)
    assert as_listed_demo(api) == [("open", [(quote.id, "expired")])]
    services.settle_session(users["org"], "demo", prices={"AAPL": 1, "NVDA": 1, "META": 1, "ORCL": 1})
    assert types("demo")[-2:] == ["QuotesExpired", "SessionSettled"]
    assert as_listed_demo(api) == [("lapsed", [(quote.id, "expired")])]
    assert audit.verify_session("demo").ok


def as_listed_demo(api) -> list:
    return [(r["status"], [(q["id"], q["status"]) for q in r["quotes"]]) for r in api.get("/sessions/demo/rfqs").json()]


def test_a_session_settled_while_paused_is_not_paused(users, api, client):
    create_demo(users)
    api.post("/sessions/demo/pause", {"reason": "a question"}, who="org")
    assert api.get("/sessions/demo").json()["paused"] is True
    settled = api.post("/sessions/demo/settle", {"prices": {"AAPL": 1, "NVDA": 1, "META": 1, "ORCL": 1}}, who="org")
    assert settled.status_code == 200
    shown = api.get("/sessions/demo").json()
    assert (shown["status"], shown["paused"], shown["paused_at"], shown["pause_reason"]) == ("settled", False, None, "")
    assert all(not s["paused"] for s in api.get("/sessions").json())
    assert not selectors.session_rows(users["org"])[0].paused
    # The row keeps what the log says (replay rebuilds it the same; old logs verify as they are).
    assert Session.objects.get(id="demo").paused_at is not None
    assert audit.verify_session("demo").ok


def test_a_timed_session_closed_while_paused_is_not_paused(users, api):
    trading(users)
    api.post("/sessions/tm/pause", {}, who="org")
    clock.set_time(T2)
    shown = api.get("/sessions/tm").json()
    assert (shown["status"], shown["paused"]) == ("closed", False)
    assert_error(api.post("/sessions/tm/resume", who="org"), 409, "trading_closed")
