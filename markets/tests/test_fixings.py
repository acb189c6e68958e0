"""Fixings through the services: a timed session settled by VWAP, by a ladder whose first tier has no
volume, by a composite that drops an outlier source; a centred window that makes the settlement wait and a
settlement by hand that ends it; the record on SessionSettled, and verify_ledger making each fixing again
and finding a tick changed under it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from conftest import create_demo
from ledger import clock, store
from markets import audit, services
from markets.errors import Conflict
from markets.models import Session, stream_name
from oracle.models import Tick
from oracle.tests.test_fixing_rules import COMPOSITE

pytestmark = pytest.mark.django_db

T1 = dt.datetime(2030, 3, 4, 15, 0, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(hours=1)
U = 10**6
LEGS = ("AAPL", "NVDA", "META", "ORCL")


def timed(users, rule: dict, sid: str = "fix") -> Session:
    clock.set_time(T1)
    session = create_demo(users, sid, t2=T2, end_mode="timed", fixing_rule=rule)
    return session


def put(sid: str, seconds: float, prices: dict[str, float], volume: float | None = None, source: str = "a") -> None:
    """Ticks at t2 + seconds for the legs named, each leg with `volume` units (None: no volume)."""
    at = T2 + dt.timedelta(seconds=seconds)
    Tick.objects.bulk_create(
        Tick(
            session_id=sid,
            symbol=leg,
            at=at,
            price=round(p * U),
            volume=None if volume is None else round(volume * U),
            source=source,
        )
        for leg, p in prices.items()
    )


def everywhere(price: float) -> dict[str, float]:
    return dict.fromkeys(LEGS, price)


def settled_fixing(sid: str) -> dict:
    event = [e for e in store.iter_stream(stream_name(sid)) if e.type == "SessionSettled"][-1]
    return event.data


def test_a_timed_session_settles_at_the_vwap_of_its_window_and_the_record_says_how(users):
    timed(users, {"rule": "vwap", "window": 300})
    put("fix", -400, everywhere(90), 1000)  # before the window: not counted
    put("fix", -200, everywhere(100), 10)
    put("fix", -100, everywhere(102), 30)
    put("fix", -10, everywhere(101), 60)
    put("fix", -5, everywhere(500))  # a quote without volume: no weight in a VWAP
    clock.set_time(T2 + dt.timedelta(seconds=1))
    services.run_due()
    data = settled_fixing("fix")
    # 100 x 10 + 102 x 30 + 101 x 60 = 10,120 over 100 units: 101.20 for every leg.
    assert data["prices"] == dict.fromkeys(LEGS, 101_200_000)
    leg = data["fixing"]["legs"]["AAPL"]
    assert (leg["value"], leg["tier"], leg["rule"], leg["volume"]) == (101_200_000, 0, "vwap", 100 * U)
    assert len(leg["used"]) == 3 and len(leg["read"]) == 5 and leg["sources"] == ["a"]
    assert data["fixing"]["window"] == {"before": 300, "after": 0}
    assert data["fixing"]["described"] == "the VWAP over the 300 s before t2"
    assert audit.verify_session("fix").ok


def test_a_ladder_falls_to_the_tier_that_can_and_records_why_the_others_could_not(users):
    rule = {
        "rule": "fallback",
        "tiers": [
            {"rule": "vwap", "window": 300, "min_volume": "1000"},
            {"rule": "twap", "window": 60},
            {"rule": "last"},
        ],
    }
    timed(users, rule)
    put("fix", -100, everywhere(100), 40)
    put("fix", -30, everywhere(110))
    clock.set_time(T2)
    settled = services.settle_session(None, "fix")
    leg = settled_fixing("fix")["fixing"]["legs"]["NVDA"]
    assert leg["tier"] == 1 and leg["rule"] == "twap"
    assert leg["passed"] == [{"tier": 0, "rule": "vwap", "reason": "vwap: volume 40 in the window, 1000 needed"}]
    assert settled.settlement.prices["NVDA"] == 105 * U  # 100 for 30 s, 110 for 30 s
    assert audit.verify_session("fix").ok


def settle_with_an_outlier(users) -> None:
    """The issue's composite (the median across a, b, c within 2%) settled where c is 50% off."""
    timed(users, COMPOSITE)
    put("fix", -20, everywhere(100), source="a")
    put("fix", -15, everywhere(101), source="b")
    put("fix", -10, everywhere(150), source="c")
    clock.set_time(T2)
    services.settle_session(None, "fix")


def test_a_composite_drops_the_source_far_from_the_others_and_names_it(users):
    settle_with_an_outlier(users)
    leg = settled_fixing("fix")["fixing"]["legs"]["META"]
    assert leg["value"] == 100 * U and leg["dropped"] == {"c": 150 * U}
    assert leg["by_source"] == {"a": 100 * U, "b": 101 * U} and leg["sources"] == ["a", "b"]
    assert audit.verify_session("fix").ok


def test_a_fixing_that_cannot_be_made_waits_and_says_why(users):
    timed(users, {"rule": "composite", "inner": {"rule": "last"}, "sources": ["a", "b"], "min_sources": 2})
    put("fix", -20, everywhere(100), source="a")
    clock.set_time(T2)
    services.run_due()
    session = Session.objects.get(id="fix")
    assert session.status == Session.Status.CLOSED
    assert "composite: 1 source(s) answered within the deviation, 2 needed" in session.waiting_reason
    assert "b: last: no tick" in session.waiting_reason
    # The legs that fail alike are said once: the reason stays short enough to be read whole.
    assert session.waiting_reason.count("composite:") == 1 and "(AAPL, NVDA, META, ORCL: composite" in (
        session.waiting_reason
    )


def test_a_centred_window_makes_the_settlement_wait_until_it_ends(users):
    timed(users, {"rule": "median", "window": 60, "after": 30})
    put("fix", -10, everywhere(100))
    put("fix", 10, everywhere(104))
    put("fix", 20, everywhere(108))
    put("fix", 40, everywhere(999))  # after the window: never counted
    clock.set_time(T2 + dt.timedelta(seconds=5))
    services.run_due()
    session = Session.objects.get(id="fix")
    assert session.status == Session.Status.CLOSED and "window to close at" in session.waiting_reason
    clock.set_time(T2 + dt.timedelta(seconds=30))
    services.run_due()
    assert Session.objects.get(id="fix").settlement.prices["AAPL"] == 104 * U  # median of 100, 104, 108
    assert audit.verify_session("fix").ok


def test_settling_by_hand_inside_a_centred_window_ends_it_then(users, settings):
    settings.ALLOW_MANUAL_SETTLE = True
    timed(users, {"rule": "median", "window": 60, "after": 30})
    put("fix", -10, everywhere(100))
    put("fix", 10, everywhere(104))
    put("fix", 20, everywhere(108))
    clock.set_time(T2 + dt.timedelta(seconds=15))
    services.settle_session(users["org"], "fix")
    fixing = settled_fixing("fix")["fixing"]
    assert fixing["end"] == (T2 + dt.timedelta(seconds=15)).isoformat()
    assert fixing["legs"]["ORCL"]["value"] == 100 * U  # 100 and 104: the lower middle
    assert audit.verify_session("fix").ok


def test_settling_by_hand_inside_the_window_is_refused_where_manual_settlement_is_off(users, settings):
    settings.ALLOW_MANUAL_SETTLE = False
    timed(users, {"rule": "median", "window": 60, "after": 30})
    put("fix", -10, everywhere(100))
    clock.set_time(T2 + dt.timedelta(seconds=15))
    with pytest.raises(Conflict) as info:
        services.settle_session(users["org"], "fix")
    assert info.value.code == "window_open"
    assert Session.objects.get(id="fix").status != Session.Status.SETTLED


def test_verify_ledger_finds_a_tick_changed_under_a_fixing(users):
    timed(users, {"rule": "vwap", "window": 300})
    put("fix", -100, everywhere(100), 10)
    put("fix", -50, everywhere(104), 30)
    clock.set_time(T2)
    services.settle_session(None, "fix")
    assert audit.verify_session("fix").ok
    used = settled_fixing("fix")["fixing"]["legs"]["AAPL"]["used"][0]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE oracle_tick SET volume = %s WHERE id = %s", [20 * U, used])
    problems = audit.verify_session("fix").problems
    assert any("AAPL: the volumes recorded differ" in p for p in problems)
    assert any("AAPL: the fixing makes 102400000 again, the settlement used 103000000" in p for p in problems)
