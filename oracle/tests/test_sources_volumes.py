"""The replay CSV's volume columns: `AAPL:volume` beside `AAPL`, in units of 10**-6 (VOLUME_SCALE)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from oracle import sources
from oracle.fixing_methods import VOLUME_SCALE
from oracle.sources import ReplayError, Row, load_replay_csv

T0 = dt.datetime(2025, 1, 2, 14, 30, tzinfo=dt.UTC)


def write(tmp_path: Path, text: str, name: str = "v.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_volume_columns_ride_with_their_rows_in_units_of_a_millionth(tmp_path):
    path = write(
        tmp_path,
        "ts,AAPL,AAPL:volume,NVDA,nvda:Volume\n"
        "2025-01-02T14:30:00Z,230.5,1200,135,0.000001\n"
        "2025-01-02T14:30:01Z,230.6,,135.1,2.5\n"  # an empty cell: no AAPL volume in this row
        "2025-01-02T14:30:02Z,230.7, 0 ,135.2,\n",
    )
    rows = load_replay_csv(path, ["AAPL", "NVDA"])
    assert rows == [
        Row(T0, {"AAPL": 230_500_000, "NVDA": 135_000_000}, {"AAPL": 1200 * VOLUME_SCALE, "NVDA": 1}),
        Row(T0 + dt.timedelta(seconds=1), {"AAPL": 230_600_000, "NVDA": 135_100_000}, {"NVDA": 2_500_000}),
        Row(T0 + dt.timedelta(seconds=2), {"AAPL": 230_700_000, "NVDA": 135_200_000}, {"AAPL": 0}),
    ]
    assert "AAPL:volume" not in rows[0].prices  # a volume column is no leg


def test_a_file_without_volume_columns_has_no_volumes(tmp_path):
    rows = load_replay_csv(write(tmp_path, "ts,AAPL\n2025-01-02T14:30:00Z,1\n"), ["AAPL"])
    assert rows == [Row(T0, {"AAPL": 1_000_000}, None)]


def test_the_volume_column_may_stand_anywhere_and_only_price_columns_count_as_legs(tmp_path):
    path = write(tmp_path, "ts,AAPL:volume,NVDA,AAPL\n2025-01-02T14:30:00Z,7,1,2\n")
    assert load_replay_csv(path, ["AAPL", "NVDA"])[0].volumes == {"AAPL": 7_000_000}
    with pytest.raises(ReplayError, match=r":1:5: no column for leg META \(the header has NVDA, AAPL\)"):
        load_replay_csv(path, ["AAPL", "META"])


BAD = [
    ("ts,AAPL,NVDA:volume\n2025-01-02T14:30:00Z,1,2\n", ":1:3: volume column NVDA:volume has no price column NVDA beside it"),
    ("ts,AAPL,:volume\n2025-01-02T14:30:00Z,1,2\n", ":1:3: volume column :volume has no price column (empty) beside it"),
    ("ts,AAPL,AAPL:volume,aapl:VOLUME\n", ":1:4: column aapl:VOLUME appears twice"),
    ("ts,AAPL,AAPL:volume\n2025-01-02T14:30:00Z,1,-5\n", ":2:3: AAPL: volume must not be negative"),
    ("ts,AAPL,AAPL:volume\n2025-01-02T14:30:00Z,1,lots\n", ":2:3: AAPL: volume must be a number, not 'lots'"),
    ("ts,AAPL,AAPL:volume\n2025-01-02T14:30:00Z,1,1.0000001\n", ":2:3: AAPL: volume has more than 6 decimal places"),
    ("ts,AAPL,AAPL:volume\n2025-01-02T14:30:00Z,1,1e13\n", ":2:3: AAPL: volume is too large"),
    ("ts,AAPL,AAPL:volume\n2025-01-02T14:30:00Z,1,inf\n", ":2:3: AAPL: volume must be a finite number"),
    ("ts,AAPL,AAPL:volume\n2025-01-02T14:30:00Z,1,1\n2025-01-02T14:30:01Z,1,1,000\n", ":3:4: unexpected extra field"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_volumes_are_refused_with_file_line_and_column(tmp_path, text, message):
    path = write(tmp_path, text, "bad_volumes.csv")
    with pytest.raises(ReplayError) as caught:
        load_replay_csv(path, ["AAPL"])
    assert str(caught.value).startswith(f"{path}:"), caught.value
    assert message in str(caught.value), caught.value


def test_the_feed_carries_each_rows_volumes_when_asked(tmp_path):
    path = write(tmp_path, "ts,A,A:volume\n2025-01-02T14:30:00Z,1,3\n2025-01-02T14:30:02Z,2,\n")
    rows = load_replay_csv(path, ["A"])
    delays = sources.replay_delays([r.at for r in rows], speed=2)
    assert list(sources.replay_feed(rows, delays, volumes=True)) == [
        (0.0, {"A": 1_000_000}, {"A": 3_000_000}),
        (1.0, {"A": 2_000_000}, {}),
    ]
    assert list(sources.replay_feed(rows, delays)) == [(0.0, {"A": 1_000_000}), (1.0, {"A": 2_000_000})]
