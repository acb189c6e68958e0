"""Proving the ledger from the market's side: `verify_ledger` names the first event someone rewrote behind
the triggers' back, replay checks the projection, and the other command operators run by hand: `settle`."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from conftest import create_demo
from ledger import clock, store
from ledger.models import Event
from ledger.tests.test_store import behind_the_triggers_back, verify
from markets import services
from markets.models import Holding, Session, Settlement
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 6, 1, 15, 0, tzinfo=dt.UTC)


def demo_events(users) -> list[Event]:
    create_demo(users)
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    services.accept_quote(users["alice"], services.provide_quote(users["mm"], rfq.id, "0.62").id)
    return list(Event.objects.filter(stream="session-demo").order_by("version"))


def verify_ledger_error() -> str:
    with pytest.raises(CommandError) as info:
        call_command("verify_ledger", stdout=StringIO())
    return str(info.value)


# ---------------------------------------------------------------- the verifier finds tampering


def _edit_payload(cursor, events):
    data = events[9].data | {"quantity": 1}
    cursor.execute("UPDATE ledger_event SET payload = %s WHERE seq = %s", [json.dumps(data), events[9].seq])
    return events[9], "content does not match its hash"


def _edit_hash(cursor, events):
    cursor.execute("UPDATE ledger_event SET hash = %s WHERE seq = %s", ["f" * 64, events[5].seq])
    return events[5], "content does not match its hash"


def _edit_and_rehash(cursor, events):
    """A careful forger recomputes the edited event's hash: the next event's link breaks instead."""
    e = events[9]
    payload = store.canonical_json(e.data | {"quantity": 1})
    digest = store.compute_hash(e.prev_hash, e.stream, e.version, e.type, store.format_at(e.at), payload)
    cursor.execute("UPDATE ledger_event SET payload = %s, hash = %s WHERE seq = %s", [payload, digest, e.seq])
    return events[10], "prev_hash does not link"


def _edit_time(cursor, events):
    cursor.execute("UPDATE ledger_event SET at = %s WHERE seq = %s", ["2001-01-01 00:00:00", events[3].seq])
    return events[3], "content does not match its hash"


def _delete_middle(cursor, events):
    cursor.execute("DELETE FROM ledger_event WHERE seq = %s", [events[6].seq])
    return events[7], "version 8 where 7 was expected"


def _swap_seq(cursor, events):
    """Swap the global order of two neighbours; each row's own hash is still right."""
    a, b = events[4].seq, events[5].seq
    cursor.execute("UPDATE ledger_event SET seq = -1 WHERE seq = %s", [a])
    cursor.execute("UPDATE ledger_event SET seq = %s WHERE seq = %s", [a, b])
    cursor.execute("UPDATE ledger_event SET seq = %s WHERE seq = -1", [b])
    # Version 6 now carries seq a, which comes before version 5's seq b.
    return Event.objects.get(seq=a), f"global seq {a} is not after {b}"


def _swap_versions(cursor, events):
    a, b = events[4], events[5]
    cursor.execute("UPDATE ledger_event SET version = 0 WHERE seq = %s", [a.seq])
    cursor.execute("UPDATE ledger_event SET version = %s WHERE seq = %s", [a.version, b.seq])
    cursor.execute("UPDATE ledger_event SET version = %s WHERE seq = %s", [b.version, a.seq])
    # b now comes first in the stream, and its link points at a, not at a's predecessor.
    return b, "prev_hash does not link"


@pytest.mark.parametrize(
    "tamper",
    [_edit_payload, _edit_hash, _edit_and_rehash, _edit_time, _delete_middle, _swap_seq, _swap_versions],
    ids=lambda f: f.__name__.strip("_"),
)
def test_verifier_names_the_first_bad_event(users, tamper):
    events = demo_events(users)
    assert len(events) == 11
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "verified 1 session(s), 11 events" in out.getvalue()

    with behind_the_triggers_back() as cursor:
        bad, reason = tamper(cursor, events)

    _count, problem = verify("session-demo")
    assert problem is not None
    assert (problem.seq, problem.version) == (bad.seq, Event.objects.get(seq=bad.seq).version)
    assert reason in problem.reason
    message = verify_ledger_error()
    assert f"event #{bad.seq} " in message
    assert message.startswith("ledger verification failed in demo: hash chain:")
    assert "\n" not in message


@pytest.mark.sqlite_only("verify_ledger --quick reads the SQLite file itself")
@pytest.mark.parametrize(
    "tamper",
    [_edit_payload, _edit_hash, _edit_and_rehash, _edit_time, _delete_middle, _swap_versions],
    ids=lambda f: f.__name__.strip("_"),
)
def test_the_quick_check_names_the_same_first_bad_event(users, tamper):
    events = demo_events(users)
    out = StringIO()
    call_command("verify_ledger", "--quick", stdout=out)
    assert "verified 1 session(s), 11 events: chains intact, holdings match the log" in out.getvalue()
    with behind_the_triggers_back() as cursor:
        bad, reason = tamper(cursor, events)
    with pytest.raises(CommandError) as info:
        call_command("verify_ledger", "--quick", stdout=StringIO())
    message = str(info.value)
    assert message.startswith("ledger verification failed in demo: hash chain:")
    assert f"event #{bad.seq} " in message and reason in message


@pytest.mark.sqlite_only("verify_ledger --quick reads the SQLite file itself")
def test_the_quick_check_compares_holdings_with_the_log(users):
    demo_events(users)
    Holding.objects.filter(participant__username="bob", leg="ORCL").update(qty=31_000_000)
    with pytest.raises(CommandError) as info:
        call_command("verify_ledger", "--quick", "demo", stdout=StringIO())
    assert str(info.value).startswith("ledger verification failed in demo: replay: holdings of bob (user #")


def test_a_truncated_tail_is_caught_by_the_replay(users):
    """Deleting the last events leaves a valid chain; the projection still remembers them."""
    events = demo_events(users)
    with behind_the_triggers_back() as cursor:
        cursor.execute("DELETE FROM ledger_event WHERE seq = %s", [events[-1].seq])
    assert verify("session-demo") == (10, None)
    message = verify_ledger_error()
    assert message.startswith("ledger verification failed in demo: replay:")


def test_verifier_checks_the_projection_against_a_replay(users):
    demo_events(users)
    Holding.objects.filter(participant__username="bob", leg="ORCL").update(qty=31_000_000)
    message = verify_ledger_error()
    assert "replay: holdings" in message
    assert "demo" in message


def test_verify_ledger_names_unknown_sessions_and_checks_only_those_asked(users):
    demo_events(users)
    with pytest.raises(CommandError, match="unknown session: nope"):
        call_command("verify_ledger", "demo", "nope", stdout=StringIO())
    out = StringIO()
    call_command("verify_ledger", "demo", stdout=out)
    assert "demo: 11 events, ok" in out.getvalue()
    assert "verified 1 session(s)" in out.getvalue()


# ---------------------------------------------------------------- the settle command


def settle(*args: str) -> str:
    out = StringIO()
    call_command("settle", *args, stdout=out)
    return out.getvalue()


def settle_error(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        settle(*args)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


ALL_PRICES = ["--price", "AAPL=190.1", "--price", "NVDA=120", "--price", "META=500.5", "--price", "ORCL=110"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--price", "AAPL"], "--price 'AAPL': write it as LEG=VALUE, e.g. AAPL=190.1"),
        (["--price", "=5"], "write it as LEG=VALUE"),
        (["--price", "AAPL="], "write it as LEG=VALUE"),
        (["--price", "AAPL=190.1"], "No price given for NVDA, META, ORCL"),
        ([*ALL_PRICES[:6], "--price", "ORCL=cheap"], "Price of ORCL must be a number, not 'cheap'"),
        ([*ALL_PRICES[:6], "--price", "ORCL=-1"], "Price of ORCL must not be negative"),
        ([*ALL_PRICES[:6], "--price", "ORCL=0.0000001"], "Price of ORCL has more than 6 decimal places"),
        ([*ALL_PRICES, "--price", "TSLA=1"], "Unknown leg TSLA"),
    ],
)
def test_settle_price_errors_are_one_line_and_write_nothing(users, args, expected):
    create_demo(users)
    events = Event.objects.count()
    assert expected in settle_error("demo", *args)
    assert Event.objects.count() == events
    assert Session.objects.get(id="demo").status == Session.Status.OPEN


def test_settle_needs_a_known_session(users):
    assert settle_error() == "name a session to settle, or use --due"
    assert "Unknown session 'nope'" in settle_error("nope", *ALL_PRICES)
    assert settle_error("--due", "demo") == "--due takes no session or prices"


def test_settle_with_prices_reports_payouts_and_refuses_a_second_time(users):
    create_demo(users)
    out = settle("demo", *ALL_PRICES)
    assert "settled demo at AAPL=190.100000, NVDA=120.000000, META=500.500000, ORCL=110.000000" in out
    # q.S = 100*190.1 + 60*120 + 80*500.5 + 120*110 = 79450
    assert "79450.000000000000" in out
    assert "alice" in out and "mm2" in out
    events = Event.objects.count()
    assert "already settled" in settle_error("demo", *ALL_PRICES)
    assert "already settled" in settle_error("demo")
    assert Event.objects.count() == events


def test_settle_without_prices_or_ticks_says_which_prices_are_missing(users):
    create_demo(users)
    clock.set_time(T0)
    Tick.objects.create(session_id="demo", symbol="AAPL", at=T0, price=1_000_000, source="manual")
    Tick.objects.create(session_id="demo", symbol="NVDA", at=T0 + dt.timedelta(seconds=1), price=1, source="manual")
    Tick.objects.create(session_id="other", symbol="META", at=T0, price=1, source="manual")
    message = settle_error("demo")
    assert message == "Cannot settle demo: no price for NVDA, META, ORCL at or before 2030-06-01 15:00:00 UTC"
    assert Session.objects.get(id="demo").status == Session.Status.OPEN


def test_settle_takes_the_last_tick_at_or_before_now_and_records_it(users):
    clock.set_time(T0)
    create_demo(users)
    chosen = {}
    for k, leg in enumerate(["AAPL", "NVDA", "META", "ORCL"]):
        Tick.objects.create(session_id="demo", symbol=leg, at=T0 - dt.timedelta(minutes=5), price=1, source="sim:1")
        # the last one at or before now: exactly now for AAPL, a second earlier for the others
        at = T0 if k == 0 else T0 - dt.timedelta(seconds=1)
        chosen[leg] = Tick.objects.create(
            session_id="demo", symbol=leg, at=at, price=(k + 1) * 10_000_000, source="sim:1"
        )
        Tick.objects.create(session_id="demo", symbol=leg, at=T0 + dt.timedelta(seconds=1), price=999, source="sim:1")
        Tick.objects.create(session_id="elsewhere", symbol=leg, at=T0, price=777, source="sim:1")

    out = settle("demo")

    assert "settled demo at AAPL=10.000000, NVDA=20.000000, META=30.000000, ORCL=40.000000" in out
    settled = Event.objects.get(stream="session-demo", type="SessionSettled").data
    assert settled["fixing"]["ticks"] == {leg: [tick.id] for leg, tick in chosen.items()}
    assert settled["fixing"]["source"] == "oracle"
    assert settled["fixing"]["rule"] == {"rule": "last"}
    assert dt.datetime.fromisoformat(settled["fixing"]["at"]) == T0
    assert settled["prices"] == {"AAPL": 10_000_000, "NVDA": 20_000_000, "META": 30_000_000, "ORCL": 40_000_000}
    # q.S = 100*10 + 60*20 + 80*30 + 120*40 = 9400
    assert settled["total"] == settled["expected"] == "9400.000000000000"
    assert Settlement.objects.get(session_id="demo").fixing["ticks"] == settled["fixing"]["ticks"]
    call_command("verify_ledger", stdout=StringIO())


@pytest.mark.postgres_only("on SQLite the quick check runs (the tests above)")
def test_the_quick_check_says_it_is_for_sqlite_files(users):
    demo_events(users)
    with pytest.raises(CommandError, match="the quick check reads the SQLite file itself; on other databases use"):
        call_command("verify_ledger", "--quick", stdout=StringIO())
    call_command("verify_ledger", stdout=StringIO())  # the full check works on any database
