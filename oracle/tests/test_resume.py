"""Where the sim resumes a leg (the pure rule of `oracle.resume`) and the walk's exact starts and lines."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle import resume, sources
from oracle.resume import LastTick, Origin, describe, leg_resume, place, walk_start
from oracle.sources import SimConfig, SimSource
from oracle.tests.test_sources import DEFAULT_CONFIG, LEGS

T = dt.datetime(2030, 1, 7, 14, 30, tzinfo=dt.UTC)
CONFIGURED = 100_000_000


def tick(session: str, price: int, tick_id: int, seconds: float = 0, leg: str = "GOLD") -> LastTick:
    return LastTick(session, leg, tick_id, T + dt.timedelta(seconds=seconds), price)


# ---------------------------------------------------------------- the rule


def test_a_walk_starts_from_the_newest_stored_tick_by_time_then_id():
    ticks = [tick("a", 94_330_000, 10, seconds=5), tick("b", 91_000_000, 12, seconds=4), None]
    assert walk_start(CONFIGURED, False, ticks) == Origin(94_330_000, ticks[0])
    same_instant = [tick("a", 94_330_000, 10), tick("b", 91_000_000, 12)]
    assert walk_start(CONFIGURED, False, same_instant).tick == same_instant[1]  # the later id


def test_a_walk_without_a_tick_starts_from_the_config_and_start_overrides_every_tick():
    assert walk_start(CONFIGURED, False, []) == Origin(CONFIGURED)
    assert walk_start(CONFIGURED, False, [None, tick("a", 0, 3)]) == Origin(CONFIGURED)  # no usable price
    assert walk_start(10_500_000, True, [tick("a", 94_330_000, 10)]) == Origin(10_500_000, flagged=True)


def test_a_leg_follows_its_walk_unless_its_own_newest_tick_is_elsewhere():
    own = tick("old", 91_000_000, 7)
    assert leg_resume(own, False, 94_330_000) == own  # a level of its own: a line from its tick
    assert leg_resume(own, False, None) == own  # the walk is under way: its own tick still counts
    assert leg_resume(own, False, 91_000_000) is None  # priced together before: one walk again
    assert leg_resume(own, True, 94_330_000) is None  # --start names it
    assert leg_resume(None, False, 94_330_000) is None  # no tick yet: joins the walk
    assert leg_resume(tick("old", -5, 7), False, None) is None  # a price the walk cannot continue from


def test_the_lines_say_the_price_and_the_tick():
    walk = walk_start(CONFIGURED, False, [tick("demo", 94_330_000, 812, seconds=5.25)])
    assert describe("GOLD", walk, ["demo", "s2"], ["new"]) == (
        "resume GOLD at 94.33 from tick 812 of demo (2030-01-07 14:30:05.250000 UTC) for demo, s2; no tick yet: new"
    )
    assert describe("OIL", Origin(CONFIGURED), ["demo"]) == "start OIL at 100.00 from the config (no tick yet) for demo"
    assert describe("OIL", Origin(1_234_567, flagged=True), ["a"]) == "start OIL at 1.234567 from --start for a"
    many = [f"s{i}" for i in range(11)]
    assert describe("OIL", Origin(CONFIGURED), many).endswith("s6, s7 and 3 more")


CONFIG_START = {"GOLD": 100_000_000, "OIL": 80_000_000}


def placed(sessions, last, started=(), flags=()):
    return place(sessions, last, ["GOLD", "OIL"], started, CONFIG_START.__getitem__, lambda s: s in flags)


def test_sessions_priced_together_resume_on_one_walk_and_a_new_one_joins_it():
    g_a, g_b = tick("a", 94_330_000, 11, 5, "GOLD"), tick("b", 94_330_000, 12, 5, "gold")  # b spells it gold
    o_a = tick("a", 86_400_000, 13, 5, "OIL")
    plan = placed({"a": ["GOLD", "OIL"], "b": ["gold"], "c": ["GOLD", "OIL"]}, {"a": {"GOLD": g_a, "OIL": o_a},
                  "b": {"gold": g_b}})  # fmt: skip
    assert plan.walks == {"GOLD": Origin(94_330_000, g_b), "OIL": Origin(86_400_000, o_a)}  # b's: the later id
    assert plan.lines == {}
    assert plan.keys == {
        "a": {"GOLD": "GOLD", "OIL": "OIL"},
        "b": {"gold": "GOLD"},
        "c": {"GOLD": "GOLD", "OIL": "OIL"},
    }
    assert plan.said == [
        "resume GOLD at 94.33 from tick 12 of b (2030-01-07 14:30:05 UTC) for a, b; no tick yet: c",
        "resume OIL at 86.40 from tick 13 of a (2030-01-07 14:30:05 UTC) for a; no tick yet: c",
    ]


def test_a_session_priced_apart_gets_a_line_from_its_own_tick_and_start_overrides_both():
    old, new = tick("old", 91_000_000, 3, 1), tick("demo", 94_330_000, 40, 9)
    last = {"old": {"GOLD": old}, "demo": {"GOLD": new}}
    plan = placed({"demo": ["GOLD"], "old": ["GOLD"]}, last)
    assert plan.walks == {"GOLD": Origin(94_330_000, new)}
    assert plan.lines == {"GOLD (old)": ("GOLD", 91_000_000)}
    assert plan.keys == {"demo": {"GOLD": "GOLD"}, "old": {"GOLD": "GOLD (old)"}}
    assert plan.said[1] == "resume GOLD at 91.00 from tick 3 of old (2030-01-07 14:30:01 UTC) for old"
    flagged = placed({"demo": ["GOLD"], "old": ["GOLD"]}, last, flags={"GOLD"})
    assert flagged.walks == {"GOLD": Origin(100_000_000, flagged=True)} and flagged.lines == {}
    assert flagged.said == ["start GOLD at 100.00 from --start for demo, old"]


def test_a_walk_under_way_is_joined_where_it_is_unless_the_session_has_a_tick_of_its_own():
    plan = placed({"late": ["GOLD", "OIL"]}, {"late": {"GOLD": tick("late", 50_000_000, 9)}}, started={"gold", "oil"})
    assert plan.walks == {}
    assert plan.keys == {"late": {"GOLD": "GOLD (late)", "OIL": "OIL"}}
    assert plan.lines == {"GOLD (late)": ("GOLD", 50_000_000)}
    assert plan.said == ["resume GOLD at 50.00 from tick 9 of late (2030-01-07 14:30:00 UTC) for late"]


stored = st.one_of(st.none(), st.builds(tick, st.sampled_from("abc"), st.integers(1, 10**9), st.integers(1, 99),
                                        st.integers(0, 5), st.just("GOLD")))  # fmt: skip


@given(st.dictionaries(st.sampled_from("abcd"), stored, min_size=1), st.booleans(), st.booleans())
def test_every_leg_starts_from_its_own_newest_tick_unless_start_names_it(ticks, flag, started):
    sessions = {sid: ["GOLD"] for sid in ticks}
    last = {sid: {"GOLD": t} for sid, t in ticks.items() if t is not None}
    plan = placed(sessions, last, started={"gold"} if started else (), flags={"GOLD"} if flag else ())
    for sid, own in ticks.items():
        key = plan.keys[sid]["GOLD"]
        first = plan.lines[key][1] if key in plan.lines else plan.walks[key].price if key in plan.walks else None
        if flag:
            assert key == "GOLD"  # the walk, which starts at --start (or is under way)
        elif own is not None:
            assert first == own.price  # exactly its own newest price
        else:
            assert key == "GOLD"  # no tick yet: the walk
    if not started:
        newest = max((t for t in ticks.values() if t), key=lambda t: (t.at, t.tick_id), default=None)
        expected = 100_000_000 if flag or newest is None else newest.price
        assert plan.walks["GOLD"].price == expected


# ---------------------------------------------------------------- the walk's starts and lines


@pytest.fixture(scope="module")
def config() -> SimConfig:
    return sources.load_config(DEFAULT_CONFIG)


def test_a_restarted_symbol_shows_its_start_exactly_and_walks_on_from_it(config):
    sim = SimSource(LEGS, config, seed=5, tick_seconds=0.5)
    sim.set_start("aapl", 94_333_333)  # not a multiple of the config's tick size (0.01): still exact
    rows = list(itertools.islice(sim, 3))
    assert rows[0]["AAPL"] == 94_333_333 and rows[0]["NVDA"] == 135_000_000
    assert abs(rows[1]["AAPL"] - 94_333_333) < 2_000_000  # one step from it, not from 230.00
    fresh = SimSource(LEGS, config, seed=5, tick_seconds=0.5)
    assert [row["NVDA"] for row in itertools.islice(fresh, 3)] == [row["NVDA"] for row in rows]  # no draw taken


def test_the_same_seed_and_the_same_starting_point_give_the_same_ticks(config):
    def run(seed: int) -> list[dict[str, int]]:
        sim = SimSource(LEGS, config, seed=seed, tick_seconds=0.5)
        for leg, price in zip(LEGS, (94_330_000, 1_000_000, 7_777_770, 170_000_000), strict=True):
            sim.set_start(leg, price)
        sim.line("AAPL (old)", "AAPL", 91_000_000)
        return list(itertools.islice(sim, 50))

    assert run(3) == run(3)
    assert run(3)[1:] != run(4)[1:]


def test_a_line_starts_exactly_and_moves_by_its_symbols_returns():
    config = SimConfig(time_scale=3600.0)  # one base unit tick size: the returns are visible exactly enough
    sim = SimSource(["GOLD", "OIL"], config, seed=2, tick_seconds=1.0)
    next(sim)
    sim.line("GOLD (old)", "gold", 50_000_000)
    rows = list(itertools.islice(sim, 40))
    assert rows[0]["GOLD (old)"] == 50_000_000
    ratio = rows[0]["GOLD (old)"] / rows[0]["GOLD"]
    for row in rows[1:]:
        assert row["GOLD (old)"] / row["GOLD"] == pytest.approx(ratio, rel=1e-6)
    assert len({row["GOLD (old)"] for row in rows}) > 30  # it moves
    sim.keep_lines(set())
    assert "GOLD (old)" not in next(sim)


@given(st.integers(min_value=1, max_value=sources.MAX_PRICE_UNITS))
def test_any_stored_price_is_resumed_exactly(price):
    """No float round trip in what a restart continues from: the first price is the stored integer."""
    sim = SimSource(["GOLD"], SimConfig(tick_size=10_000), seed=1, tick_seconds=0.5)
    sim.set_start("GOLD", price)
    sim.line("GOLD (b)", "GOLD", price)
    first = next(sim)
    assert first == {"GOLD": price, "GOLD (b)": price}
    assert math.isfinite(sim._log[0])


def test_a_start_the_walk_cannot_take_is_refused(config):
    sim = SimSource(LEGS, config, seed=1, tick_seconds=0.5)
    with pytest.raises(ValueError, match="must be positive"):
        sim.set_start("AAPL", 0)
    with pytest.raises(KeyError):
        sim.line("X (a)", "XYZ", 5)
    assert resume.resumable(None) is None
