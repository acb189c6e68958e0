"""Each fixing rule through `fix_leg` (what the settlement and verify_ledger run) against an example worked by
hand from the rule's reference, the arithmetic written out as docs/fixings.md does.

The ticks of one leg (prices in currency, volumes in units; t = seconds from t2):

    id   t     price    volume  source
    1   -90    99.00       5    a       before a 60 s window: only the price in force when it opens
    2   -50   100.00      10    a
    3   -30   102.00      30    a
    4   -10   101.00      70    a
    5    +5   130.00     100    a       after t2: only a centred window sees it
"""

from __future__ import annotations

import datetime as dt

import pytest

from oracle.fixing_methods import VOLUME_SCALE, Insufficient, Obs
from oracle.fixing_rules import fix_leg, validate_rule

T2 = dt.datetime(2030, 6, 3, 16, 0, tzinfo=dt.UTC)
P = 10**6  # one currency unit in price base units


def tick(i: int, seconds: float, price: str, volume: int | None, source: str = "a") -> Obs:
    units = round(float(price) * 100) * (P // 100)  # the examples have two decimals
    return Obs(i, T2 + dt.timedelta(seconds=seconds), units, None if volume is None else volume * VOLUME_SCALE, source)


TICKS = [
    tick(1, -90, "99.00", 5),
    tick(2, -50, "100.00", 10),
    tick(3, -30, "102.00", 30),
    tick(4, -10, "101.00", 70),
    tick(5, 5, "130.00", 100),
]


def fixed(rule: dict, obs=TICKS, end: dt.datetime | None = None) -> dict:
    spec = validate_rule(rule)
    reach_after = spec.get("after", 0) if spec["rule"] not in ("fallback", "composite") else 0
    return fix_leg(obs, spec, T2, end or T2 + dt.timedelta(seconds=reach_after))


def test_last_is_the_last_tick_at_or_before_t2():
    # CME tier 2 / LSE's last trade: tick 4 at t2 - 10 s (tick 5 comes after t2).
    made = fixed({"rule": "last"})
    assert (made["value"], made["used"], made["volume"]) == (101_000_000, [4], 70 * VOLUME_SCALE)


def test_close_is_the_last_tick_of_its_source():
    # LSE close, venue "b": its only tick is at t2 - 40 s, though a's tick 4 is later.
    mine = [*TICKS, tick(6, -40, "100.50", 1, source="b")]
    made = fixed({"rule": "close", "source": "b"}, mine)
    assert (made["value"], made["used"], made["sources"]) == (100_500_000, [6], ["b"])
    with pytest.raises(Insufficient, match="close: no tick from source 'c' at or before the end of the window"):
        fixed({"rule": "close", "source": "c"}, mine)


def test_median_is_the_lower_middle_of_the_windows_prices():
    # WM/Reuters median over (t2 - 60, t2]: ticks 2, 3, 4 -> 100, 101, 102 sorted; element (3 - 1) // 2 = 1: 101.
    made = fixed({"rule": "median", "window": 60})
    assert (made["value"], made["used"]) == (101_000_000, [2, 3, 4])
    # An even count takes the lower middle (a price quoted): add 103 -> 100, 101, 102, 103 -> element 1: 101.
    made = fixed({"rule": "median", "window": 60}, [*TICKS, tick(6, -5, "103.00", 1)])
    assert made["value"] == 101_000_000


def test_twap_weighs_each_price_by_the_time_it_was_in_force():
    # BFIX-style TWAP over [t2 - 60, t2]: 99 (tick 1, in force when the window opens) for 10 s, 100 for 20 s,
    # 102 for 20 s, 101 for 10 s: (990 + 2,000 + 2,040 + 1,010) / 60 = 6,040 / 60 = 100.6666...,
    # floored to the price scale: 100.666666.
    made = fixed({"rule": "twap", "window": 60})
    assert (made["value"], made["used"]) == (100_666_666, [1, 2, 3, 4])


def test_vwap_weighs_each_price_by_its_volume_and_floors():
    # CME tier 1 / LSE VWAP over (t2 - 60, t2]: (100 x 10 + 102 x 30 + 101 x 70) / (10 + 30 + 70)
    #   = (1,000 + 3,060 + 7,070) / 110 = 11,130 / 110 = 101.181818..., floored: 101.181818.
    made = fixed({"rule": "vwap", "window": 60})
    assert (made["value"], made["used"], made["volume"]) == (101_181_818, [2, 3, 4], 110 * VOLUME_SCALE)


def test_a_centred_vwap_counts_the_ticks_after_t2_until_its_end():
    # WM/R-style centred window (t2 - 60, t2 + 10]: tick 5 too: (11,130 + 130 x 100) / 210 = 24,130 / 210
    #   = 114.904761..., floored: 114.904761.
    made = fixed({"rule": "vwap", "window": 60, "after": 10})
    assert (made["value"], made["used"]) == (114_904_761, [2, 3, 4, 5])
    # Settled by hand at t2 + 3 s, the window ends then: tick 5 is not in it, the value is 101.181818.
    assert fixed({"rule": "vwap", "window": 60, "after": 10}, end=T2 + dt.timedelta(seconds=3))["value"] == 101_181_818


COMPOSITE_TICKS = [
    tick(11, -20, "101.00", None, "a"),
    tick(12, -15, "101.50", None, "b"),
    tick(13, -12, "100.80", None, "c"),
    tick(14, -8, "150.00", None, "d"),
    tick(15, -6, "160.00", None, "e"),
]


def test_a_composite_drops_the_sources_beyond_the_deviation_then_takes_the_median():
    # Each source's close: a 101.00, b 101.50, c 100.80, d 150.00, e 160.00. Median of the five (element 2
    # of 100.80, 101.00, 101.50, 150.00, 160.00): 101.50. d is |150 - 101.5| / 101.5 = 47.8% away and e 57.6%,
    # beyond 2%: dropped. The median of a, b, c (100.80, 101.00, 101.50): 101.00. Without dropping: 101.50.
    rule = {
        "rule": "composite",
        "inner": {"rule": "last"},
        "sources": ["a", "b", "c", "d", "e"],
        "min_sources": 3,
        "max_deviation": "0.02",
    }
    made = fixed(rule, COMPOSITE_TICKS)
    assert made["value"] == 101_000_000
    assert made["by_source"] == {"a": 101_000_000, "b": 101_500_000, "c": 100_800_000}
    assert made["dropped"] == {"d": 150_000_000, "e": 160_000_000}
    assert (made["used"], made["sources"], made["refused"]) == ([11, 12, 13], ["a", "b", "c"], {})
    assert fixed({**rule, "max_deviation": "1"}, COMPOSITE_TICKS)["value"] == 101_500_000
    # Needing 4 sources within the deviation, three are not enough.
    with pytest.raises(Insufficient, match=r"composite: 3 source\(s\) answered within the deviation, 4 needed"):
        fixed({**rule, "min_sources": 4}, COMPOSITE_TICKS)


def test_a_fallback_answers_with_its_first_sufficient_tier_and_says_why_the_others_could_not():
    # VWAP needing 1,000 units (the window traded 110), the median needing 5 ticks (it has 3), then the TWAP
    # (100.666666 as worked above).
    rule = {
        "rule": "fallback",
        "tiers": [
            {"rule": "vwap", "window": 60, "min_volume": "1000"},
            {"rule": "median", "window": 60, "min_ticks": 5},
            {"rule": "twap", "window": 60},
        ],
    }
    made = fixed(rule)
    assert (made["value"], made["tier"], made["rule"]) == (100_666_666, 2, "twap")
    assert made["passed"] == [
        {"tier": 0, "rule": "vwap", "reason": "vwap: volume 110 in the window, 1000 needed"},
        {"tier": 1, "rule": "median", "reason": "median: 3 ticks in the window, 5 needed"},
    ]
    with pytest.raises(Insufficient) as caught:
        fixed(rule, [])
    assert caught.value.reason == (
        "vwap: volume 0 in the window; median: 0 ticks in the window, 5 needed; twap: 0 ticks in the window, 1 needed"
    )
