"""The fixing rules, each as a desk would compute it by hand from the ticks (see docs/operations.md, "Checking a
fixing by hand")."""

from __future__ import annotations

import datetime as dt

import pytest

from oracle import fixing
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T2 = dt.datetime(2030, 2, 1, 16, 0, tzinfo=dt.UTC)


def ticks(*points: tuple[float, int], leg: str = "AAPL") -> list[int]:
    """Ticks at T2 + seconds (negative: before t2) with prices in base units; returns their ids."""
    rows = Tick.objects.bulk_create(
        Tick(session_id="s", symbol=leg, at=T2 + dt.timedelta(seconds=s), price=p, source="test") for s, p in points
    )
    return [t.id for t in Tick.objects.filter(session_id="s", symbol=leg).order_by("id")][-len(rows) :]


def take(rule: dict, legs=("AAPL",), at: dt.datetime = T2) -> fixing.Fixing:
    return fixing.take_fixing("s", list(legs), at, rule)


def test_twap_weights_the_price_in_force_when_the_window_opens():
    # Window of 60 s: [T2-60, T2]. 100 is in force from before the window until T2-30, then 200.
    ids = ticks((-90, 100_000_000), (-30, 200_000_000))
    taken = take({"rule": "twap", "window": 60})
    assert taken.prices["AAPL"] == 150_000_000  # (100 x 30 s + 200 x 30 s) / 60 s, not 200
    assert taken.ticks["AAPL"] == ids


def test_twap_inside_the_window_only_and_floored():
    ticks((-60, 1), (-40, 2), (-10, 5))  # a tick exactly at the window's start counts from there
    # 1 for 20 s, 2 for 30 s, 5 for 10 s: 130 / 60 = 2.17 -> floored to 2 base units
    assert take({"rule": "twap", "window": 60}).prices["AAPL"] == 2


def test_twap_ignores_ticks_after_t2():
    ticks((-20, 100), (5, 10_000))
    assert take({"rule": "twap", "window": 60}).prices["AAPL"] == 100


def test_median_of_an_even_count_is_the_lower_middle_price():
    ids = ticks((-50, 40), (-40, 10), (-30, 30), (-20, 20))
    taken = take({"rule": "median", "window": 60})
    assert taken.prices["AAPL"] == 20  # sorted 10 20 30 40: the lower middle, a price actually quoted
    assert taken.ticks["AAPL"] == ids
    ticks((-10, 50))
    assert take({"rule": "median", "window": 60}).prices["AAPL"] == 30


def test_last_is_the_last_tick_at_or_before_t2():
    ids = ticks((-5, 7), (0, 8), (1, 9))
    taken = take({"rule": "last"})
    assert taken.prices["AAPL"] == 8 and taken.ticks["AAPL"] == [ids[1]]


def test_a_missing_price_names_the_instant_with_its_fraction():
    ticks((-5, 7))
    at = T2 + dt.timedelta(microseconds=500_000)
    with pytest.raises(fixing.MissingPrice) as info:
        take({"rule": "last"}, legs=("AAPL", "NVDA"), at=at)
    assert str(info.value) == "no price for NVDA at or before 2030-02-01 16:00:00.500000 UTC"
    with pytest.raises(fixing.MissingPrice) as info:
        take({"rule": "last"}, legs=("NVDA",))
    assert str(info.value) == "no price for NVDA at or before 2030-02-01 16:00:00 UTC"
