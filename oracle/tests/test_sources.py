"""The pure price sources: no database, no Django settings needed beyond import."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import sources
from oracle import units as domain
from oracle.sources import ReplayError, SimConfig, SimSource, load_replay_csv, replay_delays

LEGS = ["AAPL", "NVDA", "META", "ORCL"]
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.json"
DEMO_CSV = Path(__file__).resolve().parents[1] / "data" / "prices_demo.csv"


def take(source: SimSource, n: int) -> list[dict[str, int]]:
    return list(itertools.islice(source, n))


@pytest.fixture(scope="module")
def config() -> SimConfig:
    return sources.load_config(DEFAULT_CONFIG)


# ---------------------------------------------------------------- sim


def test_same_seed_same_ticks_and_other_seed_differs(config):
    a = take(SimSource(LEGS, config, seed=42, tick_seconds=0.5), 300)
    b = take(SimSource(LEGS, config, seed=42, tick_seconds=0.5), 300)
    c = take(SimSource(LEGS, config, seed=43, tick_seconds=0.5), 300)
    assert a == b
    assert a[0] == c[0]  # both start at the configured prices
    assert a[1:] != c[1:]
    assert all(isinstance(p, int) for row in a for p in row.values())


def test_first_tick_is_the_configured_start_exactly(config):
    first = next(SimSource([*LEGS, "TSLA"], config, seed=1, tick_seconds=0.5))
    assert first == {"AAPL": 230_000_000, "NVDA": 135_000_000, "META": 600_000_000, "ORCL": 170_000_000,
                     "TSLA": 100_000_000}  # fmt: skip


def test_empirical_correlation_of_log_returns_matches_the_config(config):
    steps = 20_000
    source = SimSource(LEGS, config, seed=7, tick_seconds=1.0)
    prices = np.array([[row[leg] for leg in LEGS] for row in take(source, steps + 1)], dtype=float)
    returns = np.diff(np.log(prices), axis=0)
    measured = np.corrcoef(returns, rowvar=False)
    expected = config.correlation(LEGS)
    assert np.abs(measured - expected).max() < 0.05, measured
    # and the volatility per step is the configured one (10 % tolerance)
    dt_years = config.time_scale / sources.TRADING_YEAR_SECONDS
    vols = returns.std(axis=0) / math.sqrt(dt_years)
    for leg, vol in zip(LEGS, vols, strict=True):
        assert vol == pytest.approx(config.params(leg).vol, rel=0.1)


def test_uniform_correlation_override_and_unknown_symbols_use_the_default(config):
    matrix = config.correlation(["AAPL", "TSLA", "NVDA"])
    assert matrix[0, 2] == pytest.approx(0.55)
    assert matrix[0, 1] == matrix[1, 2] == pytest.approx(0.30)
    flat = config.with_overrides(correlation=-0.2).correlation(LEGS)
    assert np.allclose(flat, np.eye(4) * 1.2 - 0.2)


def test_overrides_per_symbol_and_for_every_leg(config):
    cfg = config.with_overrides(start={"AAPL": 1_000_000}, vol={"*": 0.0}, drift={"*": 0.0}, legs=["XYZ"])
    assert cfg.params("AAPL").start == 1_000_000
    assert cfg.params("XYZ").vol == cfg.params("NVDA").vol == cfg.default.vol == 0.0
    rows = take(SimSource(["AAPL", "XYZ"], cfg, seed=3, tick_seconds=1.0), 50)
    assert {row["AAPL"] for row in rows} == {1_000_000}  # no vol, no drift: the price stays put


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=2**63 - 1),
    vol=st.floats(min_value=0.0, max_value=10.0),
    drift=st.floats(min_value=-50.0, max_value=50.0),
    rho=st.floats(min_value=-0.3, max_value=0.95),
    time_scale=st.floats(min_value=1.0, max_value=1_000_000.0),
)
def test_prices_stay_positive_integers_within_bounds(seed, vol, drift, rho, time_scale):
    cfg = SimConfig.from_dict(
        {"default": {"start": "0.01", "drift": drift, "vol": vol}, "correlation": {"default": rho}}
    ).with_overrides(time_scale=time_scale)
    for row in take(SimSource(LEGS, cfg, seed=seed, tick_seconds=1.0), 200):
        for price in row.values():
            assert isinstance(price, int)
            assert 1 <= price <= domain.MAX_PRICE * domain.PRICE_SCALE


def test_legs_added_later_start_at_their_price_and_keep_walking(config):
    source = SimSource(["AAPL"], config, seed=5, tick_seconds=1.0)
    take(source, 3)
    assert source.extend(["AAPL", "NVDA"]) == ["NVDA"]
    row = next(source)
    assert row["NVDA"] == 135_000_000 and set(row) == {"AAPL", "NVDA"}
    assert next(source)["NVDA"] != 135_000_000


def test_the_demo_config_rounds_to_cents(config):
    assert config.tick_size == 10_000
    rows = take(SimSource(LEGS, config, seed=8, tick_seconds=1.0), 200)
    assert all(price % 10_000 == 0 for row in rows for price in row.values())
    assert len({row["AAPL"] for row in rows}) > 20  # and still moves


def test_to_base_units_is_exact_decimal_rounding():
    assert sources.to_base_units(230.0) == 230_000_000
    assert sources.to_base_units(0.1234565) == 123_456  # the float is just below ...565
    assert sources.to_base_units(1e-12) == 1  # never zero
    assert sources.to_base_units(1e30) == domain.MAX_PRICE * domain.PRICE_SCALE
    assert sources.to_base_units(230.125, 10_000) == 230_120_000  # half even, to cents
    assert sources.to_base_units(230.135, 10_000) == 230_130_000  # the float is just below .135
    assert sources.to_base_units(0.001, 10_000) == 10_000  # at least one tick
    with pytest.raises(ValueError):
        sources.to_base_units(math.nan)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"symbols": {"AAPL": {"start": "-1", "drift": 0, "vol": 0.2}}}, "symbols.AAPL.start"),
        ({"symbols": {"AAPL": {"start": "1", "drift": 0}}}, "missing 'vol'"),
        ({"default": {"start": "1", "drift": 0, "vol": -0.1}}, "default.vol"),
        ({"correlation": {"symbols": ["A", "B"], "matrix": [[1, 0.5], [0.4, 1]]}}, "not symmetric"),
        ({"correlation": {"symbols": ["A", "B"], "matrix": [[1, 2], [2, 1]]}}, "between -1 and 1"),
        ({"correlation": {"symbols": ["A", "B", "C"], "matrix": [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]}},
         "not positive definite"),
        ({"time_scale": 0}, "time_scale"),
        ({"tick_size": "0"}, "tick_size"),
        ({"colour": "red"}, "unknown field 'colour'"),
    ],
)  # fmt: skip
def test_bad_configs_are_refused_with_the_field_named(data, message):
    with pytest.raises(sources.ConfigError, match=message):
        SimConfig.from_dict(data, "cfg.json")


def test_load_config_names_the_file_and_position(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"symbols": ')
    with pytest.raises(sources.ConfigError, match=r"bad\.json:1:\d+: not valid JSON"):
        sources.load_config(bad)
    with pytest.raises(sources.ConfigError, match="cannot read"):
        sources.load_config(tmp_path / "missing.json")


# ---------------------------------------------------------------- replay


def write(tmp_path: Path, text: str, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_replay_csv_returns_every_row_in_order_as_exact_integers(tmp_path):
    path = write(
        tmp_path,
        "ts,AAPL,NVDA,EXTRA\n2025-01-02T14:30:00Z,230.5,135,1\n\n2025-01-02T14:30:01+00:00, 230.123456 ,135.01,2\n",
    )
    rows = load_replay_csv(path, ["AAPL", "NVDA"])
    assert rows == [
        (dt.datetime(2025, 1, 2, 14, 30, tzinfo=dt.UTC), {"AAPL": 230_500_000, "NVDA": 135_000_000, "EXTRA": 1_000_000}, None),
        (dt.datetime(2025, 1, 2, 14, 30, 1, tzinfo=dt.UTC), {"AAPL": 230_123_456, "NVDA": 135_010_000, "EXTRA": 2_000_000}, None),
    ]  # fmt: skip


BAD_FILES = [
    ("ts,AAPL,NVDA,META\n2025-01-02T14:30:00Z,1,2,3\n", ":1:5: no column for leg ORCL"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,2,3,4\n2025-01-02T14:30:01Z,1,abc,3,4\n", ":3:3: NVDA: price must be a number, not 'abc' (digits 0-9"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,2,0,4\n", ":2:4: META: price must be greater than zero"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,2,3,-4\n", ":2:5: ORCL: price must not be negative"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:01Z,1,2,3,4\n2025-01-02T14:30:00Z,1,2,3,4\n", ":3:1: timestamp 2025-01-02T14:30:00Z is out of order"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,2,3,4\n2025-01-02T14:30:00Z,1,2,3,4\n", ":3:1: timestamp"),
    ("", ":1:1: the file is empty"),
    ("\n\n", ":1:1: the file is empty"),
    ("ts,AAPL,NVDA,META,ORCL\n", ":2:1: no price rows after the header"),
    ("ts,AAPL,NVDA,META,ORCL\nyesterday,1,2,3,4\n", ":2:1: timestamp 'yesterday' is not an ISO 8601"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,2,3\n", ":2:5: missing value for ORCL"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,2,3,4,5\n", ":2:6: unexpected extra field"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,2,3,NaN\n", ":2:5: ORCL: price must be a finite number"),
    # Strict ASCII digits: a grouping underscore, Arabic-Indic and full-width digits are not numbers.
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1_065.5,2,3,4\n", ":2:2: AAPL: price must be a number, not '1_065.5'"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,\u0661\u0660,3,4\n", ":2:3: NVDA: price must be a number, not"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1,2,\uff11\uff10,4\n", ":2:4: META: price must be a number, not"),
    ("ts,AAPL,NVDA,META,ORCL\n2025-01-02T14:30:00Z,1.0000001,2,3,4\n", ":2:2: AAPL: price has more than 6"),
    ("date,AAPL,NVDA,META,ORCL\n", ":1:1: the first column must be 'ts'"),
    ("ts,AAPL,NVDA,AAPL,META,ORCL\n", ":1:4: column AAPL appears twice"),
    ("ts,AAPL,NVDA,aapl,META,ORCL\n", ":1:4: column aapl appears twice (names are matched ignoring case)"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_malformed_replay_files_name_file_line_and_column(tmp_path, text, message):
    path = write(tmp_path, text, "bad_prices.csv")
    with pytest.raises(ReplayError) as caught:
        load_replay_csv(path, LEGS)
    error = str(caught.value)
    assert error.startswith(f"{path}:"), error
    assert message in error, error
    assert "\n" not in error


def test_unreadable_files(tmp_path):
    with pytest.raises(ReplayError, match=r"nope\.csv: cannot read"):
        load_replay_csv(tmp_path / "nope.csv", LEGS)
    path = tmp_path / "latin.csv"
    path.write_bytes(b"ts,AAPL\n2025-01-02T14:30:00Z,\xe9\n")
    with pytest.raises(ReplayError, match=r"latin\.csv:2:22: not UTF-8 text \(invalid continuation byte: byte 0xe9\)"):
        load_replay_csv(path, ["AAPL"])
    # The bad byte is named where it is: line 6, column 24 (five good lines before it).
    good = "".join(f"2025-01-02T14:30:0{i}Z,1\n" for i in range(4))
    path.write_bytes(f"ts,AAPL\n{good}".encode() + b"2025-01-02T14:30:05Z,1.\xff\n")
    with pytest.raises(ReplayError, match=r"latin\.csv:6:24: not UTF-8"):
        load_replay_csv(path, ["AAPL"])


def test_columns_are_matched_to_legs_by_name_ignoring_case_and_spacing(tmp_path):
    path = write(tmp_path, "ts,gold 3M,Gold  1Y\n2025-01-02T14:30:00Z,1900.5,1950\n")
    rows = load_replay_csv(path, ["GOLD 3m", "GOLD 1y"])
    assert rows[0][1] == {"gold 3M": 1_900_500_000, "Gold 1Y": 1_950_000_000}
    with pytest.raises(ReplayError, match="no column for leg GOLD 5y"):
        load_replay_csv(path, ["GOLD 3m", "GOLD 5y"])


def test_the_shipped_demo_file_is_valid_and_one_second_apart():
    rows = load_replay_csv(DEMO_CSV, LEGS)
    assert 200 <= len(rows) <= 1000
    gaps = {(b.at - a.at).total_seconds() for a, b in itertools.pairwise(rows)}
    assert gaps == {1.0}
    for _, prices, volumes in rows:
        assert volumes is None  # the demo file has no volume columns
        assert set(prices) == set(LEGS)
        assert all(10_000_000 < p < 2_000_000_000 for p in prices.values())  # 10 .. 2000 currency


def test_replay_delays_follow_the_file_pace_or_a_fixed_tick():
    t0 = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    stamps = [t0 + dt.timedelta(seconds=s) for s in (0, 1, 3, 3.5, 10)]
    assert replay_delays(stamps, speed=1) == [0.0, 1.0, 2.0, 0.5, 6.5]
    assert replay_delays(stamps, speed=2) == [0.0, 0.5, 1.0, 0.25, 3.25]
    assert replay_delays(stamps, speed=0.5) == [0.0, 2.0, 4.0, 1.0, 13.0]
    assert replay_delays(stamps, tick_ms=250) == [0.0, 0.25, 0.25, 0.25, 0.25]
    assert replay_delays([], tick_ms=100) == []
    for bad in ({}, {"speed": 1, "tick_ms": 5}, {"speed": 0}, {"tick_ms": -1}):
        with pytest.raises(ValueError):
            replay_delays(stamps, **bad)


def test_replay_feed_emits_rows_in_order_and_loops_with_the_first_gap():
    t0 = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    rows = [(t0 + dt.timedelta(seconds=2 * i), {"A": i + 1}) for i in range(3)]
    delays = replay_delays([at for at, _ in rows], speed=4)
    assert list(sources.replay_feed(rows, delays)) == [(0.0, {"A": 1}), (0.5, {"A": 2}), (0.5, {"A": 3})]
    looped = list(itertools.islice(sources.replay_feed(rows, delays, loop=True), 7))
    assert [p["A"] for _, p in looped] == [1, 2, 3, 1, 2, 3, 1]
    assert [d for d, _ in looped] == [0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


def test_sim_feed_paces_every_tick_after_the_first(config):
    feed = sources.sim_feed(SimSource(LEGS, config, seed=1, tick_seconds=0.25), 0.25)
    assert [d for d, _ in itertools.islice(feed, 4)] == [0.0, 0.25, 0.25, 0.25]


def test_default_config_covers_the_demo_legs(config):
    data = json.loads(DEFAULT_CONFIG.read_text())
    assert set(data["symbols"]) >= set(LEGS)
    assert np.all(np.linalg.eigvalsh(config.correlation(LEGS)) > 0)
