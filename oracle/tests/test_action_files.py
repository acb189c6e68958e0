"""A replay's corporate actions (`run_oracle --actions FILE`): the file read with file:line:col refusals, and
each action placed on the replay's clock between the rows around it."""

from __future__ import annotations

import datetime as dt

import pytest

from oracle.action_files import load_actions_csv, on_the_replay
from oracle.sources import ReplayError

T = dt.datetime(2024, 6, 10, 13, 30, tzinfo=dt.UTC)


def test_the_file_is_read_with_each_kinds_parameters(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text(
        "effective_at,kind,leg,ratio,amount\n2024-06-10T13:30:00Z,split,NVDA,10/1,\n\n2024-06-11T13:30:00Z,dividend,NVDA,,0.01\n"
    )
    split, dividend = load_actions_csv(path)
    assert (split.line, split.effective_at, split.kind, split.leg, split.params) == (
        2,
        T,
        "split",
        "NVDA",
        {"ratio": "10/1"},
    )
    assert (dividend.line, dividend.params) == (4, {"amount": "0.01"})


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "a.csv:1:1: the actions file is empty"),
        ("kind,leg\n", "a.csv:1:1: the header needs effective_at, kind, leg"),
        ("effective_at,kind,leg,colour\n", "a.csv:1:4: unknown column 'colour'"),
        ("effective_at,kind,leg\nyesterday,split,NVDA\n", "a.csv:2:1: timestamp 'yesterday' is not an ISO 8601"),
        ("effective_at,kind,leg\n2024-06-10T13:30:00Z,,NVDA\n", "a.csv:2:2: kind is empty"),
        ("effective_at,kind,leg\n2024-06-10T13:30:00Z,split\n", "a.csv:2:1: 2 cells, the header has 3"),
    ],
)
def test_a_malformed_file_is_refused_naming_file_line_and_column(tmp_path, text, said):
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(ReplayError, match=None) as info:
        load_actions_csv(path)
    assert str(info.value).startswith(said)


def test_an_action_comes_midway_between_the_rows_around_it():
    rows = [T - dt.timedelta(days=3), T - dt.timedelta(days=1), T, T + dt.timedelta(hours=6)]
    offsets = [0.0, 0.5, 1.0, 1.5]
    assert on_the_replay(T, rows, offsets) == 0.75  # the row at the cut comes after it
    assert on_the_replay(T + dt.timedelta(days=1), rows, offsets) == 1.75  # after the last row: half a gap on
    assert on_the_replay(T - dt.timedelta(days=3), rows, offsets) is None  # at the first row: refused
