"""Rebuild a session's holdings matrix from its events without the ORM, with numpy.

`replay_holdings(events)` gives the same matrix as `projections.rebuild` followed by
`projections.holdings_matrix` (that path stays the reference: it rebuilds every read model, this one
only x[i][k]). Only five event types touch holdings: SessionCreated (the legs),
InitialAllocationAssigned (the starting matrix), TradeExecuted (the taker's and maker's deltas),
BatchCleared (each fill: its owner gives on one leg and receives on another) and AutoDeleveraged (a row
of deltas per holder), so
the rest of the log is skipped unread: `replay_stream` (one session) and `replay_log` (every session, in
two queries) ask SQLite only for those rows.

Trades are read in bulk: a TradeExecuted payload in the canonical layout the services write (sorted keys,
participants by user id, one integer delta per leg) is taken apart by one regular expression and its
deltas parsed by numpy; anything else (a field added later, a log written before participants were named
by id, a huge number) is read with json.loads. The sums are exact: int64 while the numbers provably fit, Python integers otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from markets import sql

MOVING_TYPES = ("TradeExecuted", "BatchCleared", "AutoDeleveraged", "CorporateActionApplied")
HOLDING_TYPES = ("SessionCreated", "InitialAllocationAssigned", *MOVING_TYPES)
_BATCH_MARK = '"cut_at":'  # in every BatchCleared payload, in no TradeExecuted one
_ADL_MARK = '"deltas_by_id":'  # in every AutoDeleveraged and CorporateActionApplied payload, in no other moving one
_INT64_SAFE = 2**62


Holder = int | str  # a user id; a username in logs written before participants were named by id


@dataclass(frozen=True)
class Holdings:
    """x[i][k] for the holders (sorted, as the projection orders them by user id) and the legs."""

    holders: list[Holder]
    legs: list[str]
    matrix: np.ndarray

    @property
    def by_name(self) -> bool:
        """A log written before participants were named by id: holders are usernames."""
        return any(isinstance(h, str) for h in self.holders)

    def as_dict(self) -> dict[Holder, list[int]]:
        """The shape of `projections.holdings_by_user`: {user id: [x_k, ...]} in leg order (for an old log,
        of `projections.holdings_matrix`, by username)."""
        return {h: [int(x) for x in row] for h, row in zip(self.holders, self.matrix.tolist(), strict=True)}

    def totals(self) -> list[int]:
        return [int(x) for x in self.matrix.sum(axis=0).tolist()] if self.holders else []


def _type_and_payload(event: Any) -> tuple[str, str]:
    if isinstance(event, tuple | list):
        return event[0], event[1]
    return event.type, event.payload


class _Opening:
    """The legs and the starting matrix, with the projection's refusals (it cannot replay such a log)."""

    def __init__(self) -> None:
        self.legs: list[str] | None = None
        self.names: list[Holder] = []
        self.initial: list[list[int]] | None = None

    def feed(self, type_: str, payload: str) -> None:
        if type_ == "SessionCreated":
            if self.legs is not None:
                raise ValueError("the stream creates its session twice")
            self.legs = list(json.loads(payload)["legs"])
        elif type_ == "InitialAllocationAssigned":
            if self.legs is None:
                raise ValueError("an allocation before the session was created")
            if self.initial is not None:
                raise ValueError("the stream allocates its session twice")
            data = json.loads(payload)
            if "holdings_by_id" in data:
                allocation: dict[Holder, list[int]] = {int(u): row for u, row in data["holdings_by_id"].items()}
            else:
                allocation = dict(data["holdings"])
            self.names = sorted(allocation)  # type: ignore[type-var]
            self.initial = [[allocation[name][k] for k in range(len(self.legs))] for name in self.names]

    def finish(self, trades: list[str]) -> Holdings:
        legs = self.legs or []
        if self.legs is None or self.initial is None:
            return Holdings([], legs, np.zeros((0, len(legs)), dtype=np.int64))
        return Holdings(self.names, legs, _apply_trades(self.names, len(legs), self.initial, trades))


def replay_holdings(events: Iterable[Any]) -> Holdings:
    """Holdings after `events`: one session's events in version order, as (type, payload text) pairs or
    `ledger.models.Event` rows. Events of other types are skipped."""
    opening = _Opening()
    trades: list[str] = []
    for event in events:
        type_, payload = _type_and_payload(event)
        if type_ in MOVING_TYPES:
            # Before the allocation there is no holding row to move (the projection updates nothing).
            if opening.initial is not None:
                trades.append(payload)
        else:
            opening.feed(type_, payload)
    return opening.finish(trades)


def _apply_trades(names: list[Holder], n_legs: int, initial: list[list[int]], trades: list[str]) -> np.ndarray:
    """The matrix after the trades and the batch auctions' fills (`trades` holds both payloads)."""
    index = {name: i for i, name in enumerate(names)}
    batches = [p for p in trades if _BATCH_MARK in p or _ADL_MARK in p]
    if batches:
        trades = [p for p in trades if _BATCH_MARK not in p and _ADL_MARK not in p]
    holders, deltas, biggest = _parse_trades(index, n_legs, trades)
    if batches:
        more_holders, more, most = _parse_fills(index, n_legs, batches)
        holders = np.concatenate([holders, more_holders])
        dtype = object if deltas.dtype == object or more.dtype == object else np.int64
        deltas = np.concatenate([deltas.astype(dtype), more.astype(dtype)])
        biggest = max(biggest, most)
    largest_start = max((abs(x) for row in initial for x in row), default=0)
    exact_in_int64 = largest_start + biggest * max(len(holders), 1) < _INT64_SAFE
    dtype = np.int64 if exact_in_int64 else object
    matrix = np.array(initial, dtype=dtype).reshape(len(names), n_legs)
    if len(holders):
        moved = holders >= 0  # a name without a holding row (not a holder) moves nothing, as in the projection
        np.add.at(matrix, holders[moved], deltas[moved].astype(dtype))
    return matrix


def _parse_trades(index: dict[Holder, int], n_legs: int, trades: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """(holder row per side, deltas per side, largest |delta|): taker then maker for each trade."""
    if not trades:
        return np.zeros(0, dtype=np.int64), np.zeros((0, n_legs), dtype=np.int64), 0
    pattern = _canonical_trade(n_legs)
    joined = "\n".join(trades)
    found = pattern.findall(joined) if joined.count("\n") == len(trades) - 1 else []
    if len(found) == len(trades):
        # Every payload is a whole line and matched the canonical layout in full.
        get = {str(holder): row for holder, row in index.items()}.get  # the captured ids are text
        holders = np.fromiter(
            (get(name, -1) for _, maker, _, taker in found for name in (taker, maker)),
            dtype=np.int64,
            count=2 * len(found),
        )
        numbers = ",".join(f"{taker_d},{maker_d}" for maker_d, _, taker_d, _ in found)
        deltas = np.fromstring(numbers, dtype=np.int64, sep=",")
        if deltas.size != 2 * len(found) * n_legs:  # cannot happen after the match; never guess
            return _parse_trades_slowly(index, n_legs, trades)
        deltas = deltas.reshape(2 * len(found), n_legs)
        biggest = int(np.abs(deltas).max()) if deltas.size else 0
        return holders, deltas, biggest
    return _parse_trades_slowly(index, n_legs, trades)


def _parse_trades_slowly(index: dict[Holder, int], n_legs: int, trades: list[str]) -> tuple[np.ndarray, Any, int]:
    holders: list[int] = []
    rows: list[list[int]] = []
    for payload in trades:
        data = json.loads(payload)
        for side in ("taker", "maker"):
            values = [int(x) for x in data[f"{side}_deltas"]]
            # Deltas past the last leg have no holding row to land on in the projection either.
            rows.append((values + [0] * n_legs)[:n_legs])
            holders.append(index.get(data[f"{side}_id"] if f"{side}_id" in data else data[side], -1))
    biggest = max((abs(x) for row in rows for x in row), default=0)
    dtype = np.int64 if biggest < _INT64_SAFE else object
    return np.array(holders, dtype=np.int64), np.array(rows, dtype=dtype).reshape(len(rows), n_legs), biggest


def _parse_fills(index: dict[Holder, int], n_legs: int, batches: list[str]) -> tuple[np.ndarray, Any, int]:
    """What the fills of BatchCleared payloads move (each fill's owner gives on one leg, receives on
    another), and AutoDeleveraged payloads (a row of deltas per holder)."""
    holders: list[int] = []
    rows: list[list[int]] = []
    for payload in batches:
        data = json.loads(payload)
        if "deltas_by_id" in data:
            for user, deltas in sorted(data["deltas_by_id"].items()):
                rows.append(([int(x) for x in deltas] + [0] * n_legs)[:n_legs])
                holders.append(index.get(int(user), -1))
            continue
        for fill in data["result"].get("fills", ()):
            row = [0] * n_legs
            row[fill["give"]] -= fill["given"]
            row[fill["get"]] += fill["received"]
            rows.append(row)
            holders.append(index.get(fill["owner"], -1))
    biggest = max((abs(x) for row in rows for x in row), default=0)
    dtype = np.int64 if biggest < _INT64_SAFE else object
    return np.array(holders, dtype=np.int64), np.array(rows, dtype=dtype).reshape(len(rows), n_legs), biggest


@lru_cache(maxsize=16)
def _canonical_trade(n_legs: int) -> re.Pattern[str]:
    """One TradeExecuted payload exactly as `store.canonical_json` writes it (a whole line).

    Captures (maker_deltas, maker_id, taker_deltas, taker_id). Numbers have at most 18 digits, so they
    fit int64; leg names have no quote or escape.
    """
    num = r"-?(?:0|[1-9][0-9]{0,17})"
    uid = r"([1-9][0-9]{0,17})"
    text = r'"[^"\\\n]*"'
    deltas = rf"\[({num}(?:,{num}){{{n_legs - 1}}})\]"
    return re.compile(
        rf'^\{{"get_leg":{text},"get_qty":{num},"give_leg":{text},"give_qty":{num},'
        rf'"maker_deltas":{deltas},"maker_id":{uid},"quote_id":{num},"rate":{num},"rfq_id":{num},'
        rf'"taker_deltas":{deltas},"taker_id":{uid},"trade_id":{num}\}}$',
        re.MULTILINE,
    )


def replay_log(db: Any, *, workers: int | None = None) -> dict[str, Holdings]:
    """`replay_stream` for every stream of the log with holdings events, in two queries.

    Trades only count after their stream's allocation, so each stream's trades are kept by version
    (taken after the allocation's) instead of being sorted: the result is `replay_stream`'s, stream by stream.

    A database file given by path with enough events (see `ledger.sqlite.verify_log_raw`) has its trades
    cut into one seq range per process: a trade's deltas add up in any order, so each process sums its
    range's trades per holder and the sums are added exactly (Python integers) to the allocation.
    """
    from ledger.sqlite import connect, parts_for

    heads: dict[str, list[tuple[str, int, str, str]]] = {}
    with connect(db) as conn:
        for row in sql.holdings_heads(conn):
            heads.setdefault(row[0], []).append(row)
        low, high = sql.seq_range(conn)
        parts = parts_for(db, 0 if low is None else high - low + 1, workers)
        if parts > 1:
            return _replay_in_parts(str(db), heads, low, high, parts)
        trades: dict[str, list[tuple[str, int, str]]] = {}
        for row in sql.trade_rows(conn):
            try:
                trades[row[0]].append(row)
            except KeyError:
                trades[row[0]] = [row]
    result = {}
    for stream in sorted(heads.keys() | trades.keys()):
        opening, allocated = _open(heads.get(stream, ()))
        moved = [] if allocated is None else [p for _, v, p in trades.get(stream, ()) if v > allocated]
        result[stream] = opening.finish(moved)
    return result


def _open(heads) -> tuple[_Opening, int | None]:
    """The stream's opening from its SessionCreated and allocation rows, and the allocation's version."""
    opening = _Opening()
    allocated = None
    for _, version, type_, payload in heads:
        opening.feed(type_, payload)
        if type_ == "InitialAllocationAssigned":
            allocated = version
    return opening, allocated


def _replay_in_parts(path: str, heads: dict, low: int, high: int, parts: int) -> dict[str, Holdings]:
    from ledger.sqlite import in_seq_ranges

    openings = {stream: _open(rows) for stream, rows in heads.items()}
    plan = {s: (o.names, len(o.legs or []), v) for s, (o, v) in openings.items() if v is not None}
    sums = in_seq_ranges(_trade_sums, path, low, high, parts, plan)
    result = {}
    for stream in sorted(openings):
        opening, allocated = openings[stream]
        if allocated is None:
            result[stream] = opening.finish([])
            continue
        total = [list(row) for row in opening.initial or []]
        for part in sums:
            for i, row in enumerate(part.get(stream, ())):
                for k, x in enumerate(row):
                    total[i][k] += x
        largest = max((abs(x) for row in total for x in row), default=0)
        matrix = np.array(total, dtype=np.int64 if largest < _INT64_SAFE else object)
        result[stream] = Holdings(
            opening.names, opening.legs or [], matrix.reshape(len(total), len(opening.legs or []))
        )
    return result


def _trade_sums(task: tuple[str, int, int, dict]) -> dict[str, list[list[int]]]:
    """Per stream, what its trades in one seq range move for each holder (exact Python integers)."""
    from ledger.sqlite import connect

    path, low, high, plan = task
    trades: dict[str, list[str]] = {}
    with connect(path) as conn:
        for stream, version, payload in sql.trade_rows(conn, low, high):
            if stream in plan and version > plan[stream][2]:
                trades.setdefault(stream, []).append(payload)
    return {
        stream: _apply_trades(plan[stream][0], plan[stream][1], [[0] * plan[stream][1]] * len(plan[stream][0]), moved)
        .astype(object)
        .tolist()
        for stream, moved in trades.items()
    }


def replay_stream(db: Any, stream: str) -> Holdings:
    """Holdings of one session stream read straight from SQLite (see `ledger.sqlite.connect` for `db`)."""
    from ledger.sqlite import read_types_raw

    return replay_holdings(read_types_raw(db, stream, HOLDING_TYPES))
