"""GET /sessions/{id}/prices with several feeds: each tick's id, source and volume (exact), `?source=`."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import create_demo
from markets import tokens
from markets.tests.test_api import Api, assert_error
from oracle.models import Tick

AT = dt.datetime(2026, 1, 1, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def api(client, users) -> Api:
    create_demo(users)
    return Api(client, {name: tokens.create_token(user, name="tests")[1] for name, user in users.items()})


def tick(leg: str, seconds: int, price: int, source: str, volume: int | None) -> Tick:
    return Tick.objects.create(
        session_id="demo", symbol=leg, at=AT + dt.timedelta(seconds=seconds), price=price, source=source, volume=volume
    )


def test_each_tick_shows_its_id_source_and_exact_volume_or_null(api):
    a = tick("AAPL", 0, 190_100_000, "a", 1_234_500_000)  # 1234.5 units
    b = tick("AAPL", 1, 190_200_000, "b", 1)  # one millionth of a unit: exact, never 1e-06
    c = tick("AAPL", 2, 190_300_000, "replay:prices.csv", None)  # a feed without volumes
    body = api.get("/sessions/demo/prices?history=3").json()
    assert body["latest"]["AAPL"] == {
        "id": c.id,
        "price": "190.300000",
        "at": "2026-01-01T10:00:02Z",
        "source": "replay:prices.csv",
        "volume": None,
    }
    shown = [(p["id"], p["source"], p["volume"]) for p in body["history"]["AAPL"]]
    assert shown == [(a.id, "a", "1234.500000"), (b.id, "b", "0.000001"), (c.id, "replay:prices.csv", None)]


def test_source_keeps_one_feeds_ticks_in_one_read_per_leg_and_an_unknown_feed_has_none(api):
    for i in range(3):
        tick("AAPL", 2 * i, 190_000_000 + i, "a", 5_000_000)
        tick("AAPL", 2 * i + 1, 191_000_000 + i, "b", 7_000_000)
    tick("NVDA", 0, 480_000_000, "b", None)
    api.get("/sessions/demo/prices")  # warm: the token's user
    with CaptureQueriesContext(connection) as read:
        body = api.get("/sessions/demo/prices?history=2&source=a").json()
    assert len([q for q in read.captured_queries if "oracle_tick" in q["sql"]]) == 4  # one per leg, as without
    assert body["latest"]["AAPL"]["price"] == "190.000002" and "NVDA" not in body["latest"]
    assert [p["price"] for p in body["history"]["AAPL"]] == ["190.000001", "190.000002"]
    assert {p["source"] for p in body["history"]["AAPL"]} == {"a"}
    assert api.get("/sessions/demo/prices").json()["latest"]["AAPL"]["source"] == "b"  # every feed: the newest
    assert api.get("/sessions/demo/prices?source=nobody").json()["latest"] == {}
    assert_error(api.get("/sessions/demo/prices?source=" + "x" * 65), 422, "invalid_request")
