"""The fixing methods against examples computed by hand, and their laws (hypothesis): the order of the
observations changes neither a median nor a VWAP; equal volumes make VWAP the floored mean; a source
outside the deviation never moves a composite; a ladder answers with its first tier that can."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.fixing_methods import Insufficient, Obs, close, ladder, lower_median, median_of_sources, vwap

T0 = dt.datetime(2026, 12, 7, 16, 0, tzinfo=dt.UTC)
P = 10**6  # one currency unit in price base units


def obs(i: int, price: float, volume: int | None = None, source: str = "a", seconds: int = 0) -> Obs:
    return Obs(i, T0 + dt.timedelta(seconds=seconds or i), round(price * P), volume, source)


def test_vwap_by_hand():
    # 100 x 10 + 102 x 30 + 101 x 60 = 1,000 + 3,060 + 6,060 = 10,120 over 100 units: 101.20.
    answer = vwap([obs(1, 100, 10), obs(2, 102, 30), obs(3, 101, 60)])
    assert answer.price == 101_200_000 and answer.used == (1, 2, 3) and answer.detail["volume"] == 100


def test_vwap_floors_to_the_price_scale_and_skips_ticks_without_volume():
    # (1.000001 x 1 + 1.000002 x 2) / 3 = 1.0000016666...: floored to 1.000001.
    answer = vwap([Obs(1, T0, 1_000_001, 1), Obs(2, T0, 1_000_002, 2), Obs(3, T0, 9_000_000, None)])
    assert answer.price == 1_000_001 and answer.used == (1, 2)


def test_vwap_refuses_without_enough_volume_saying_why():
    with pytest.raises(Insufficient, match="vwap: volume 0 in the window"):
        vwap([obs(1, 100), obs(2, 101)])
    with pytest.raises(Insufficient, match=r"volume 40\.5 in the window, 1000 needed"):
        vwap([obs(1, 100, 40_500_000)], min_volume=1000 * 10**6)
    with pytest.raises(Insufficient, match="1 ticks with volume in the window, 2 needed"):
        vwap([obs(1, 100, 40)], min_ticks=2)


def test_close_takes_the_last_tick_of_its_source_at_or_before_the_end():
    ticks = [obs(1, 100, source="a"), obs(2, 101, source="b"), obs(3, 102, source="a"), obs(4, 103, source="a")]
    end = T0 + dt.timedelta(seconds=3)
    assert close(ticks, end, source="a").price == 102_000_000
    assert close(ticks, end, source="b").used == (2,)
    assert close(ticks, end).used == (3,)
    with pytest.raises(Insufficient, match="no tick from source 'c'"):
        close(ticks, end, source="c")


def test_a_composite_drops_the_outlier_and_takes_the_median_of_the_rest():
    # Sources a, b, c close at 100, 101, 130; the median 101; c is 28.7% away, past 2%: dropped. The lower
    # median of a and b is 100.
    ticks = [obs(1, 100, source="a"), obs(2, 101, source="b"), obs(3, 130, source="c")]
    answer = median_of_sources(
        ticks, lambda o: close(o, T0 + dt.timedelta(hours=1)), min_sources=2, max_deviation=Fraction(2, 100)
    )
    assert answer.price == 100_000_000
    assert answer.detail["dropped"] == {"c": 130_000_000} and answer.used == (1, 2)
    with pytest.raises(Insufficient, match="2 source\\(s\\) answered within the deviation, 3 needed"):
        median_of_sources(
            ticks, lambda o: close(o, T0 + dt.timedelta(hours=1)), min_sources=3, max_deviation=Fraction(2, 100)
        )


def test_a_ladder_answers_with_the_first_tier_that_can_and_keeps_why_the_others_did_not():
    ticks = [obs(1, 100), obs(2, 101)]
    answer, tier, passed = ladder(
        [("vwap", lambda: vwap(ticks)), ("last", lambda: close(ticks, T0 + dt.timedelta(hours=1)))]
    )
    assert (answer.price, tier) == (101_000_000, "last")
    assert passed == {"vwap": "vwap: volume 0 in the window"}
    with pytest.raises(Insufficient, match="no tier answered"):
        ladder([("vwap", lambda: vwap(ticks))])


prices = st.integers(min_value=1, max_value=10**12)
volumes = st.integers(min_value=1, max_value=10**9)


@given(st.lists(st.tuples(prices, volumes), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_the_order_of_the_ticks_changes_neither_vwap_nor_the_median(rows, random):
    ticks = [Obs(i, T0, p, v) for i, (p, v) in enumerate(rows)]
    shuffled = list(ticks)
    random.shuffle(shuffled)
    assert vwap(shuffled).price == vwap(ticks).price
    assert lower_median([t.price for t in shuffled]) == lower_median([t.price for t in ticks])


@given(st.lists(prices, min_size=1, max_size=30), volumes)
def test_equal_volumes_make_vwap_the_floored_mean(values, volume):
    ticks = [Obs(i, T0, p, volume) for i, p in enumerate(values)]
    assert vwap(ticks).price == sum(values) // len(values)


@given(
    st.integers(min_value=10**6, max_value=10**9),
    st.lists(st.integers(min_value=-50, max_value=50), min_size=1, max_size=9),
    st.integers(min_value=2, max_value=50),
)
def test_a_source_outside_the_deviation_never_moves_a_composite(center, offsets, far):
    """Honest sources within half a percent of each other, one source `far` times away: whatever its
    value, the composite is the one the honest sources give, and the outlier is named as dropped."""
    honest = [Obs(i, T0, center + center * d // 10_000, source=f"s{i}") for i, d in enumerate(offsets)]
    outlier = Obs(99, T0, center * far, source="zz")
    inner = lambda o: close(o, T0)  # noqa: E731
    without = median_of_sources(honest, inner, max_deviation=Fraction(1, 10))
    with_it = median_of_sources([*honest, outlier], inner, max_deviation=Fraction(1, 10))
    assert with_it.price == without.price == lower_median([o.price for o in honest])
    assert with_it.detail["dropped"] == {"zz": center * far}
