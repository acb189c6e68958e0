"""Corporate actions that come with a replay (`run_oracle --mode replay --csv PRICES --actions FILE`): the
file's rows, and where each falls on the replay's own clock. Pure: no Django; the command schedules them
through the market's service.

The file is CSV with a header: `effective_at,kind,leg` and the parameter columns the kinds take (`ratio`,
`amount`, `into`, `cash`, `to`; an empty cell is no parameter), e.g.

    effective_at,kind,leg,ratio,amount
    2024-06-10T13:30:00Z,split,NVDA,10/1,
    2024-06-11T13:30:00Z,dividend,NVDA,,0.01

An action's instant is in the prices file's time; on the replay it comes midway between the last price row
before it and the first at or after it (so that row is priced after the cut), or a row's gap after the
last row. One before the first row is refused: the file's first row would already be at the new level.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from oracle.sources import ReplayError, _parse_ts

COLUMNS = ("effective_at", "kind", "leg")
PARAMS = ("ratio", "amount", "into", "cash", "to")


@dataclass(frozen=True)
class ActionRow:
    line: int
    effective_at: dt.datetime
    kind: str
    leg: str
    params: dict[str, str]


def load_actions_csv(path: Path) -> list[ActionRow]:
    """The file's actions in file order; ReplayError `FILE:LINE:COLUMN: what is wrong` otherwise."""
    name = path.name
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{name}:1:1: cannot read the actions file ({exc})") from None
    if not rows:
        raise ReplayError(f"{name}:1:1: the actions file is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    for column in COLUMNS:
        if column not in header:
            raise ReplayError(f"{name}:1:1: the header needs {', '.join(COLUMNS)} (and {', '.join(PARAMS)} as used)")
    for col, column in enumerate(header, start=1):
        if column not in COLUMNS + PARAMS:
            raise ReplayError(f"{name}:1:{col}: unknown column {column[:30]!r}: use {', '.join(COLUMNS + PARAMS)}")
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ReplayError(f"{name}:{line}:1: {len(row)} cells, the header has {len(header)}")
        cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
        at = _parse_ts(name, line, cells["effective_at"])
        for column in ("kind", "leg"):
            if not cells[column]:
                raise ReplayError(f"{name}:{line}:{header.index(column) + 1}: {column} is empty")
        params = {p: cells[p] for p in PARAMS if cells.get(p)}
        out.append(ActionRow(line, at, cells["kind"], cells["leg"], params))
    return out


def on_the_replay(effective_at: dt.datetime, row_ats: Sequence[dt.datetime], offsets: Sequence[float]) -> float | None:
    """Seconds after the replay starts at which an action of the file's time `effective_at` comes, given
    each price row's instant and its offset on the replay; None before the first row."""
    if not row_ats or effective_at <= row_ats[0]:
        return None
    for k in range(1, len(row_ats)):
        if row_ats[k] >= effective_at:
            return (offsets[k - 1] + offsets[k]) / 2
    gap = offsets[-1] - offsets[-2] if len(offsets) > 1 else 1.0
    return offsets[-1] + max(gap, 0.001) / 2
