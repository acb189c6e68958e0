"""The sim's traded sizes (`oracle.simvolumes`), their config (`oracle.simconfig`), and a feed's own ticks
first on a restart (`oracle.resume.own_first`). Pure: no database."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle import sources
from oracle.fixing_methods import VOLUME_SCALE
from oracle.resume import LastTick, Origin, describe, own_first
from oracle.runner import source_problem
from oracle.simconfig import ConfigError, SimConfig
from oracle.simvolumes import SimVolumes, with_volumes
from oracle.tests.test_sources import DEFAULT_CONFIG, LEGS

T = dt.datetime(2030, 1, 7, 14, 30, tzinfo=dt.UTC)


def test_sizes_are_lognormal_around_the_median_in_whole_lots():
    sizes = SimVolumes(SimConfig(), 1)
    drawn = [sizes.draw(["AAPL"])["AAPL"] for _ in range(4000)]
    assert all(v % VOLUME_SCALE == 0 and v >= VOLUME_SCALE for v in drawn)  # whole units, at least one
    median = statistics.median(drawn) / VOLUME_SCALE
    assert 93 <= median <= 107  # the default median: 100 units
    assert max(drawn) > 5 * 100 * VOLUME_SCALE  # a heavy right tail (sigma 1: e**2 ~ the 98th percentile)


def test_the_same_seed_gives_the_same_sizes_and_the_prices_do_not_move():
    config = sources.load_config(DEFAULT_CONFIG)
    one = [SimVolumes(config, 9).draw(LEGS) for _ in range(3)]
    two = [SimVolumes(config, 9).draw(LEGS) for _ in range(3)]
    assert one == two and SimVolumes(config, 10).draw(LEGS) != one[0]
    sim = sources.SimSource(LEGS, config, seed=9, tick_seconds=0.5)
    plain = list(itertools.islice(sources.sim_feed(sources.SimSource(LEGS, config, 9, 0.5), 0.5), 5))
    fed = list(itertools.islice(with_volumes(sources.sim_feed(sim, 0.5), sim.legs, SimVolumes(config, 9)), 5))
    assert [(d, p) for d, p, _ in fed] == plain  # the sizes draw from a stream of their own
    assert all(set(v) == set(LEGS) for _, _, v in fed)


@given(median=st.integers(1, 10**12), lot=st.integers(1, 10**9), sigma=st.floats(0, 5))
def test_every_size_is_a_positive_whole_number_of_lots(median, lot, sigma):
    sizes = SimVolumes(SimConfig(volume_median=median, volume_lot=lot, volume_sigma=sigma), 1).draw(["X", "Y"])
    assert all(v >= lot and v % lot == 0 and v <= 10**18 for v in sizes.values())


def test_sigma_zero_trades_the_median_every_tick_and_a_lot_rounds_it():
    config = SimConfig(volume_median=250 * VOLUME_SCALE, volume_sigma=0.0, volume_lot=100 * VOLUME_SCALE)
    assert SimVolumes(config, 1).draw(["A", "B"]) == {"A": 200 * VOLUME_SCALE, "B": 200 * VOLUME_SCALE}  # half even


def test_the_config_reads_volume_and_refuses_a_bad_one():
    config = SimConfig.from_dict({"volume": {"median": "2.5", "sigma": 0.5, "lot": "0.001"}})
    assert (config.volume_median, config.volume_sigma, config.volume_lot) == (2_500_000, 0.5, 1_000)
    assert SimConfig.from_dict({}).volume_median == 100 * VOLUME_SCALE
    assert json.loads(DEFAULT_CONFIG.read_text())  # the shipped file still loads
    for volume, message in (
        ({"median": "0"}, "volume.median must be greater than zero"),
        ({"median": "abc"}, "volume.median must be a number"),
        ({"lot": "0.0000001"}, "volume.lot has more than 6 decimal places"),
        ({"sigma": 9}, "volume.sigma: must be between 0 and 5"),
        ({"size": 1}, "unknown field 'size'"),
        ([1], "volume: expected an object"),
    ):
        with pytest.raises(ConfigError, match=message):
            SimConfig.from_dict({"volume": volume}, "cfg")


def tick(price: int, tick_id: int, seconds: int = 0) -> LastTick:
    return LastTick("demo", "GOLD", tick_id, T + dt.timedelta(seconds=seconds), price)


def test_a_feed_resumes_from_its_own_tick_else_another_feeds_named():
    mine, theirs = tick(94_000_000, 10), tick(97_000_000, 12, seconds=1)
    assert own_first({"GOLD": mine}, {}) == {"GOLD": mine}
    assert own_first({}, {"GOLD": (theirs, "b")}) == {"GOLD": LastTick("demo", "GOLD", 12, theirs.at, 97_000_000, "b")}
    said = describe("GOLD", Origin(97_000_000, own_first({}, {"GOLD": (theirs, "b")})["GOLD"]), ["demo"])
    assert said == "resume GOLD at 97.00 from tick 12 of demo (2030-01-07 14:30:01 UTC, feed b) for demo"


@pytest.mark.parametrize("name", ["a", "sim:seed=1", "replay:prices.csv", "Börse #2", "x" * 64, "two words"])
def test_a_source_name_is_one_to_64_printable_characters(name):
    assert source_problem(name) is None


@pytest.mark.parametrize("name", ["", "x" * 65, "a\nb", "a\rb", "\x1b[31m", "a\u2028b", " a", "a "])
def test_a_source_name_with_a_control_character_or_an_edge_space_is_refused(name):
    assert source_problem(name)
