"""Generate realistic, correctly hash-chained ledger logs without going through the services.

A log holds `sessions` interleaved session streams. Each stream starts as the services start one
(SessionCreated, one ParticipantJoined per participant, InitialAllocationAssigned pro rata, SessionOpened)
and then runs RFQ cycles: RFQRequested, one or two QuoteProvided, and mostly TradeExecuted (sometimes a
QuoteWithdrawn, an RFQCancelled or a SettlementWaiting instead; every 25th RFQ after the organiser paused
and resumed trading); with `settle=True` each stream ends with a 2-for-1 split of its first leg
(`bench.eventlog_actions`: CorporateActionScheduled and CorporateActionApplied) and SessionSettled. Sessions trade by RFQ and batch auction (`mechanism="both"`, the default): now and then a
batch cycle places limit orders and cuts them (`bench.eventlog_batch`: OrderPlaced, OrderCancelled,
BatchCleared, cleared by `markets.domain.batch` itself). The first `squeezes` sessions allow bounded shorting
and run one short squeeze (`bench.eventlog_short`: a short, a price jump, PositionLiquidated, buy-back orders
and AutoDeleveraged). Trades and orders are feasible (nobody else goes short or gives what its resting
orders reserve), so the log is one the services could have written.

Rows come out exactly as Django stores them in SQLite (`at` as `str(naive UTC datetime)`), hashed with
`ledger.store.compute_hash` over `ledger.store.format_at(at)`, and the generator keeps the holdings it
expects a replay to rebuild (`GeneratedLog.holdings`).

Needs Django configured (it imports ledger.store and markets.domain for the formulas).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bench import eventlog_actions, eventlog_batch, eventlog_short
from ledger.store import GENESIS, compute_hash
from markets import domain

EPOCH = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
T2 = EPOCH + dt.timedelta(days=30)  # t2 of the sessions that settle: after every event of any log
LEG_NAMES = ["AAPL", "NVDA", "META", "ORCL", "MSFT", "AMZN", "GOOG", "TSLA", "AMD", "INTC", "IBM", "CSCO"]
ROW_COLUMNS = ("seq", "stream", "version", "type", "payload", "at", "prev_hash", "hash")
INSERT_SQL = f"INSERT INTO ledger_event ({', '.join(ROW_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def dumps(payload: dict) -> str:
    """`ledger.store.canonical_json` without the float scan (the generator makes no floats)."""
    return _ENCODER.encode(payload)


def usernames(participants: int) -> tuple[str, list[str], list[str]]:
    """(organiser, traders, makers): one organiser, then three traders for every maker."""
    holders = participants - 1
    makers = max(1, holders // 4)
    traders = max(1, holders - makers)
    return "org", [f"trader{i:03d}" for i in range(traders)], [f"maker{i:03d}" for i in range(makers)]


@dataclass
class _Stream:
    session_id: str
    legs: list[str]
    q: list[int]
    budget: int
    settle: bool
    pending: list[tuple[str, dict]] = field(default_factory=list)
    version: int = 0
    prev: str = GENESIS
    holdings: dict[int, list[int]] = field(default_factory=dict)  # by user id, as the events name holders
    initial: dict[int, list[int]] = field(default_factory=dict)  # the allocation, as corporate actions carry it
    traders: list[int] = field(default_factory=list)
    makers: list[int] = field(default_factory=list)
    done: bool = False
    mechanism: str = "rfq"
    book: eventlog_batch.Book | None = None  # batch sessions: reference prices, reservations, resting orders
    short: eventlog_short.Squeeze | None = None  # sessions that allow shorting: the squeeze's state


@dataclass
class GeneratedLog:
    """Filled in while `rows()` runs: expected holdings per stream and counts per event type."""

    n_events: int
    sessions: int
    participants: int
    legs: int
    seed: int
    settle: bool = True
    session_prefix: str = "bench-"
    first_seq: int = 1  # the log continues after these: seq, and the RFQ, quote, trade, order and tick ids
    first_ids: tuple[int, ...] = (1, 1, 1, 1, 1)
    mechanism: str = "both"  # how the sessions trade: "rfq" (RFQ cycles only), or "both" (batch cycles too)
    # How many sessions (the first ones) allow bounded shorting and run a short squeeze (see
    # bench.eventlog_short): a trader goes short, the leg jumps, the trader is liquidated and deleveraged.
    squeezes: int = 1
    # The user id of each name of `usernames(participants)`; by default 1, 2, 3... in that order (a log
    # read without a users table, as the replay bench does, needs no real accounts).
    user_ids: dict[str, int] | None = None
    holdings: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    streams: list[str] = field(default_factory=list)

    def rows(self) -> Iterator[tuple]:
        """Every event row in global seq order (seq, stream, version, type, payload, at, prev_hash, hash)."""
        rng = random.Random(self.seed)
        organiser, traders, makers = usernames(self.participants)
        ids_of = self.user_ids or {n: i for i, n in enumerate([organiser, *traders, *makers], start=1)}
        self._names = {ids_of[n]: n for n in [organiser, *traders, *makers]}
        n_legs = min(self.legs, len(LEG_NAMES))
        # Every session needs room for its opening events and a few cycles.
        self.sessions = max(1, min(self.sessions, self.n_events // (self.participants + 20)))
        per_session = self.n_events // self.sessions
        streams = []
        for s in range(self.sessions):
            budget = per_session + (1 if s < self.n_events - per_session * self.sessions else 0)
            st = _Stream(
                session_id=f"{self.session_prefix}{s:03d}",
                legs=LEG_NAMES[:n_legs],
                q=[rng.randrange(500, 5000) * 1000 * domain.QTY_SCALE for _ in range(n_legs)],
                budget=budget,
                settle=self.settle,
                traders=[ids_of[n] for n in traders],
                makers=[ids_of[n] for n in makers],
                mechanism=self.mechanism,
            )
            if st.mechanism != "rfq":
                st.book = eventlog_batch.Book([rng.randrange(10, 1000) * domain.PRICE_SCALE for _ in range(n_legs)])
            if s < self.squeezes:
                st.short = eventlog_short.start(st, self.seed, s, budget)
            streams.append(st)
            self.streams.append(domain.stream_name(st.session_id))
        first = (*self.first_ids, 1, 1)[:5]
        ids = dict(zip(("rfq", "quote", "trade", "order", "tick"), (i - 1 for i in first), strict=True))
        live = list(streams)
        seq = self.first_seq - 1
        while live:
            # Interleave: a random session writes a short burst, as concurrent sessions would.
            st = live[rng.randrange(len(live))]
            for _ in range(rng.randrange(1, 8)):
                if not st.pending:
                    self._plan(st, rng, ids, ids_of[organiser])
                if not st.pending:
                    break
                type_, payload = st.pending.pop(0)
                seq += 1
                yield self._row(st, seq, type_, payload)
                if st.done and not st.pending:
                    break
            if st.done and not st.pending:
                live.remove(st)
                self.holdings[domain.stream_name(st.session_id)] = st.holdings

    def _row(self, st: _Stream, seq: int, type_: str, payload: dict | Callable[[dt.datetime], dict]) -> tuple:
        st.version += 1
        st.budget -= 1
        # One event per millisecond: every 1000th lands on a whole second, which Django stores
        # without a fraction; the verifiers must read both forms.
        at = EPOCH + dt.timedelta(microseconds=seq * 1000 + (seq % 7 if seq % 1000 else 0))
        if callable(payload):  # a batch's cut names its own time
            payload = payload(at)
        at_db = str(at.replace(tzinfo=None))  # what Django's SQLite backend writes
        # == ledger.store.format_at(at), without strftime's cost
        at_hashed = f"{at_db[:10]}T{at_db[11:]}Z" if len(at_db) == 26 else f"{at_db[:10]}T{at_db[11:]}.000000Z"
        text = dumps(payload)
        stream = domain.stream_name(st.session_id)
        digest = compute_hash(st.prev, stream, st.version, type_, at_hashed, text)
        row = (seq, stream, st.version, type_, text, at_db, st.prev, digest)
        st.prev = digest
        self.counts[type_] = self.counts.get(type_, 0) + 1
        if type_ == "TradeExecuted":
            for who, deltas in (
                (payload["taker_id"], payload["taker_deltas"]),
                (payload["maker_id"], payload["maker_deltas"]),
            ):
                row_x = st.holdings[who]
                for k, delta in enumerate(deltas):
                    row_x[k] += delta
        return row

    def _plan(self, st: _Stream, rng: random.Random, ids: dict[str, int], organiser: int) -> None:
        """Queue the stream's next few events (a whole RFQ cycle at a time)."""
        if st.version == 0:
            st.pending.append(
                (
                    "SessionCreated",
                    {
                        "session_id": st.session_id,
                        "title": f"Bench session {st.session_id}",
                        "legs": st.legs,
                        "q": st.q,
                        "t1": None,
                        "t2": T2.isoformat() if st.settle else None,
                        "start_mode": "immediate",
                        "end_mode": "timed" if st.settle else "manual",
                        "allocation_mode": "pro_rata",
                        "fixing_rule": {"rule": "last"},
                        "created_by_id": organiser,
                        "scales": {"qty_dp": domain.QTY_DP, "rate_dp": domain.RATE_DP, "price_dp": domain.PRICE_DP},
                    }
                    | eventlog_batch.created(st)
                    | eventlog_short.created(st),
                )
            )
            for user_id, role in (
                [(organiser, "organiser")] + [(u, "trader") for u in st.traders] + [(u, "maker") for u in st.makers]
            ):
                joined = {"user_id": user_id, "username": self._names[user_id], "role": role}
                st.pending.append(("ParticipantJoined", joined))
            # Pro rata in the order of names, as the services allocate.
            by_name = domain.pro_rata(st.q, sorted(self._names[u] for u in st.traders + st.makers))
            st.holdings = {u: by_name[self._names[u]] for u in sorted(st.traders + st.makers)}
            st.initial = {u: list(row) for u, row in st.holdings.items()}
            allocation = {str(u): list(row) for u, row in st.holdings.items()}
            st.pending.append(("InitialAllocationAssigned", {"mode": "pro_rata", "holdings_by_id": allocation}))
            st.pending.append(("SessionOpened", {}))
            return
        # A 2-for-1 split of the first leg (two events), TradingClosed at t2, SettlementWaiting (a price was
        # missing at t2), then SessionSettled
        closing = 3 if st.settle else 0
        split = 2 if st.settle and not getattr(st, "actions", 0) and st.budget >= closing + 2 else 0
        if split and st.budget == closing + split:
            at = EPOCH + dt.timedelta(seconds=st.version)
            st.pending.extend(eventlog_actions.split(st, at, rng.randrange(10, 1000) * domain.PRICE_SCALE))
            return
        if st.budget <= closing:
            if st.settle:
                eventlog_batch.lapse(st)  # trading closes: resting orders lapse
            if st.settle and st.budget >= 3:
                st.pending.append(("TradingClosed", {"at": T2.isoformat()}))
            if st.settle and st.budget >= 2:
                st.pending.append(("SettlementWaiting", {"reason": f"No price for {st.legs[0]} at t2"}))
            if st.settle and st.budget >= 1:
                st.pending.append(("SessionSettled", self._settlement(st, rng)))
            st.done = True
            return
        at_iso = (EPOCH + dt.timedelta(seconds=st.version)).isoformat()
        room = st.budget - closing - split
        if room < 5:  # not enough room left for a full cycle (up to 5 events): an RFQ that gets cancelled
            ids["rfq"] += 1
            taker = rng.choice(st.traders)
            gi = max(range(len(st.legs)), key=lambda k: eventlog_batch.available(st, taker, k))
            st.pending.append(("RFQRequested", self._rfq(st, ids["rfq"], taker, gi, (gi + 1) % len(st.legs), 1)))
            if room == 1:  # the last event: the RFQ stays open
                return
            for _ in range(room - 2):
                ids["quote"] += 1
                st.pending.append(("QuoteProvided", self._quote(ids, rng.choice(st.makers), 10**8, at_iso)))
            st.pending.append(("RFQCancelled", {"rfq_id": ids["rfq"]}))
            return
        if eventlog_short.due(st, room):
            st.pending.extend(eventlog_short.plan(st, ids, eventlog_batch._cut))
            if st.pending:
                return
        if st.book is not None and room >= eventlog_batch.CYCLE_EVENTS and rng.random() < eventlog_batch.SHARE:
            st.pending.extend(eventlog_batch.plan(st, rng, ids, organiser))
            return
        if (ids["rfq"] + 1) % 25 == 0 and room >= 7:  # now and then the organiser pauses and resumes
            st.pending.append(("TradingPaused", {"reason": "bench pause", "by_id": organiser}))
            st.pending.append(("TradingResumed", {"by_id": organiser}))
        taker = rng.choice(st.traders + st.makers[:1])
        gi, ge = rng.sample(range(len(st.legs)), 2)
        held = eventlog_batch.available(st, taker, gi)  # an RFQ gives nothing its resting orders reserve
        qty = max(1, held * rng.randrange(1, 20) // 1000)
        ids["rfq"] += 1
        rfq_id = ids["rfq"]
        st.pending.append(("RFQRequested", self._rfq(st, rfq_id, taker, gi, ge, qty)))
        quotes = []
        for maker in rng.sample([m for m in st.makers if m != taker], min(len(st.makers) - (taker in st.makers), 2)):
            if quotes and rng.random() < 0.85:
                break
            ids["quote"] += 1
            rate = rng.randrange(50_000_000, 200_000_000)
            quotes.append((ids["quote"], maker, rate))
            st.pending.append(("QuoteProvided", self._quote(ids, maker, rate, at_iso, rfq_id=rfq_id)))
        roll = rng.random()
        feasible = [
            (qid, maker, rate)
            for qid, maker, rate in quotes
            if 0 < domain.trade_receive(qty, rate) <= eventlog_batch.available(st, maker, ge) and qty <= held
        ]
        if roll < 0.05 and quotes:
            qid, maker, _ = quotes[0]
            st.pending.append(("QuoteWithdrawn", {"quote_id": qid, "rfq_id": rfq_id}))
            st.pending.append(("RFQCancelled", {"rfq_id": rfq_id}))
        elif roll < 0.08 and quotes:  # the quotes ran out of time before anyone accepted
            st.pending.append(("QuotesExpired", {"quote_ids": [qid for qid, _, _ in quotes]}))
            st.pending.append(("RFQCancelled", {"rfq_id": rfq_id}))
        elif roll < 0.12 or not feasible:
            st.pending.append(("RFQCancelled", {"rfq_id": rfq_id}))
        else:
            qid, maker, rate = feasible[0]
            move = domain.plan_trade(
                st.legs, st.legs[gi], st.legs[ge], qty, rate, st.holdings[taker], st.holdings[maker]
            )
            taker_deltas, maker_deltas = move.deltas(len(st.legs))
            ids["trade"] += 1
            st.pending.append(
                (
                    "TradeExecuted",
                    {
                        "trade_id": ids["trade"],
                        "rfq_id": rfq_id,
                        "quote_id": qid,
                        "taker_id": taker,
                        "maker_id": maker,
                        "give_leg": st.legs[gi],
                        "get_leg": st.legs[ge],
                        "give_qty": move.give_qty,
                        "get_qty": move.get_qty,
                        "rate": rate,
                        "taker_deltas": taker_deltas,
                        "maker_deltas": maker_deltas,
                    },
                )
            )

    @staticmethod
    def _rfq(st: _Stream, rfq_id: int, taker: int, gi: int, ge: int, qty: int) -> dict:
        return {"rfq_id": rfq_id, "taker_id": taker, "give_leg": st.legs[gi], "get_leg": st.legs[ge], "quantity": qty}

    @staticmethod
    def _quote(ids: dict[str, int], maker: int, rate: int, at_iso: str, rfq_id: int | None = None) -> dict:
        return {
            "quote_id": ids["quote"],
            "rfq_id": rfq_id if rfq_id is not None else ids["rfq"],
            "maker_id": maker,
            "rate": rate,
            "expires_at": at_iso,
        }

    @staticmethod
    def _settlement(st: _Stream, rng: random.Random) -> dict:
        prices = [rng.randrange(10, 1000) * domain.PRICE_SCALE for _ in st.legs]
        paid = domain.payouts(st.holdings, prices)
        return {
            "prices": dict(zip(st.legs, prices, strict=True)),
            "fixing": {"rule": {"rule": "manual"}, "at": None, "ticks": {}, "source": "manual"},
            "payouts_by_id": {str(u): domain.money_str(v) for u, v in paid.items()},
            "total": domain.money_str(sum(paid.values())),
            "expected": domain.money_str(domain.payout(st.q, prices)),
        }
