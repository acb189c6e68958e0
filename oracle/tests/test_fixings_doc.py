"""The worked example of docs/fixings.md, run through the services: a timed session settled by a ladder
(VWAP needing 100 units, else TWAP) where AAPL answers by VWAP and NVDA, whose ticks carry no volume, falls
to TWAP. Every figure and key the page quotes is asserted here, so the page cannot drift."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from conftest import create_demo
from ledger import clock, store
from markets import audit, services
from markets.models import stream_name
from oracle.models import Tick

pytestmark = pytest.mark.django_db

PAGE = Path(__file__).resolve().parents[2] / "docs" / "fixings.md"
T1 = dt.datetime(2030, 6, 3, 15, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2030, 6, 3, 16, 0, tzinfo=dt.UTC)
RULE = {
    "rule": "fallback",
    "tiers": [{"rule": "vwap", "window": 60, "min_volume": "100"}, {"rule": "twap", "window": 60}],
}
# (seconds from t2, price, volume): the page's table.
AAPL = [(-90, "99.00", 5), (-50, "100.00", 10), (-30, "102.00", 30), (-10, "101.00", 70), (5, "130.00", 100)]


def put(leg: str, rows, with_volume: bool) -> None:
    Tick.objects.bulk_create(
        Tick(
            session_id="doc",
            symbol=leg,
            at=T2 + dt.timedelta(seconds=s),
            price=int(p.replace(".", "")) * 10**4,
            volume=v * 10**6 if with_volume else None,
            source="a",
        )
        for s, p, v in rows
    )


@pytest.fixture
def settled(users):
    clock.set_time(T1)
    create_demo(users, "doc", t2=T2, end_mode="timed", fixing_rule=RULE)
    for leg in ("AAPL", "META", "ORCL"):
        put(leg, AAPL, True)
    put("NVDA", AAPL, False)
    clock.set_time(T2 + dt.timedelta(seconds=1))
    services.run_due()
    [event] = [e for e in store.iter_stream(stream_name("doc")) if e.type == "SessionSettled"]
    return event.data


def test_the_pages_example_settles_as_it_says(settled):
    page = PAGE.read_text()
    fixing = settled["fixing"]
    assert settled["prices"] == {"AAPL": 101_181_818, "NVDA": 100_666_666, "META": 101_181_818, "ORCL": 101_181_818}
    assert "101.181818" in page and "100.666666" in page
    assert set(fixing) == {"rule", "at", "end", "window", "described", "ticks", "legs", "source"}
    assert fixing["window"] == {"before": 60, "after": 0}
    assert fixing["described"] == (
        "the VWAP over the 60 s before t2 (at least 100 traded); "
        "if that cannot be made, the time-weighted average price over the 60 s before t2"
    )
    assert fixing["described"] in page.replace("\n", " ")
    aapl, nvda = fixing["legs"]["AAPL"], fixing["legs"]["NVDA"]
    ids = aapl["read"]
    assert len(ids) == 4  # ticks 1-4: the one in force when the window opens and the window's three
    assert aapl == {
        "value": 101_181_818,
        "tier": 0,
        "rule": "vwap",
        "passed": [],
        "used": ids[1:],
        "sources": ["a"],
        "volume": 110_000_000,
        "read": ids,
        "prices": [99_000_000, 100_000_000, 102_000_000, 101_000_000],
        "volumes": [5_000_000, 10_000_000, 30_000_000, 70_000_000],
    }
    assert nvda["tier"] == 1 and nvda["rule"] == "twap" and nvda["volume"] is None
    assert nvda["passed"] == [{"tier": 0, "rule": "vwap", "reason": "vwap: volume 0 in the window"}]
    assert len(nvda["used"]) == 4 and nvda["volumes"] == [None] * 4
    for said in ('"tier": 1', '"reason": "vwap: volume 0 in the window"', '"volume": 110000000', '"source": "oracle"'):
        assert said in page, said
    assert audit.verify_session("doc").ok
