"""Load a generated log into the scratch database fast: the events plus the read models they project to.

Making 10,000 trades through the services takes minutes on this machine, so the bench writes big sessions
directly: the ledger rows with executemany, and the projection (sessions, participants, holdings and their
reservations, RFQs, quotes, trades, limit orders, batches and their fills, settlements) computed here in
memory with the same rules as `markets.projections` (`markets.domain.orders.after_cut` for what a cut leaves
of an order; liquidations and deleveraging as `markets.projections_margin`) and written with bulk_create. `bench/test_bench_quick.py` checks the result equals `projections.rebuild` of
the same log. Sessions loaded this way are ordinary sessions: the services trade on them afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from bench.eventlog import INSERT_SQL


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _parse(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def load(rows: Iterable[tuple]) -> int:
    """Insert the rows (see `bench.eventlog.ROW_COLUMNS`) and their projection. Returns the number of events.

    Must run inside a transaction; the users named in the log must exist.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection

    from ledger import store
    from markets import domain, projections, sql
    from markets.models import RFQ, Batch, Fill, Holding, Order, Participant, Payout, Quote, Session, Settlement, Trade
    from markets.projections import session_from_created

    rows = list(rows)
    users = set(get_user_model().objects.values_list("pk", flat=True))
    sessions: dict[str, Session] = {}
    participants: dict[tuple[str, int], Participant] = {}
    holdings: dict[str, dict[int, list[int]]] = {}
    initial: dict[str, dict[int, list[int]]] = {}
    rfqs: dict[int, RFQ] = {}
    quotes: dict[int, Quote] = {}
    live_by_rfq: dict[int, set[int]] = {}
    trades: list[Trade] = []
    book = _Batches(sessions, participants, holdings)
    settlements: list[Settlement] = []
    payouts: list[tuple[str, int, str]] = []
    deferred: list[tuple[str, str, dict, dt.datetime]] = []  # corporate actions, projected once rows exist
    for seq, stream, version, type_, payload, at_text, _prev, _hash in rows:
        sid = domain.session_of_stream(stream)
        d = json.loads(payload)
        at = _at(at_text)
        if type_ == "SessionCreated":
            sessions[sid] = session_from_created(d, d["created_by_id"], at)
        elif type_ == "ParticipantJoined":
            if d["user_id"] not in users:
                raise ValueError(f"the log names user #{d['user_id']}, who does not exist")
            participants[(sid, d["user_id"])] = Participant(
                session_id=sid,
                user_id=d["user_id"],
                username=d["username"],
                display_name=d.get("name") or d["username"],  # as the projection names them
                role=d["role"],
                joined_at=at,
            )
        elif type_ == "InitialAllocationAssigned":
            sessions[sid].allocation_mode = d["mode"]
            holdings[sid] = {int(u): list(row) for u, row in d["holdings_by_id"].items()}
            initial[sid] = {int(u): list(row) for u, row in d["holdings_by_id"].items()}
        elif type_ == "SessionOpened":
            sessions[sid].status = Session.Status.OPEN
            sessions[sid].opened_at = at
            if sessions[sid].batch_seconds:  # the first cut, one period after the opening
                sessions[sid].next_cut_at = at + dt.timedelta(seconds=sessions[sid].batch_seconds)
        elif type_ == "OrderPlaced":
            book.placed(sid, d, at, seq)
        elif type_ == "OrderCancelled":
            book.close(book.orders[d["order_id"]], Order.Status.CANCELLED, at)
        elif type_ == "BatchCleared":
            book.cleared(sid, d, at, seq)
            for (in_session, _user), who in participants.items():  # buy-backs in this batch wait no more
                if in_session == sid and who.liquidation_pending and book.owns_any(who, d["orders"]):
                    who.liquidation_pending = False
        elif type_ == "PositionLiquidated":
            who = participants[(sid, d["user_id"])]
            who.liquidated_at, who.liquidation_pending = at, d["method"] == "buy_back"
            book.named_ticks(sid, d, at)
        elif type_ == "AutoDeleveraged":
            for user, deltas in d["deltas_by_id"].items():
                row = holdings[sid][int(user)]
                for k, delta in enumerate(deltas):
                    row[k] += delta
            participants[(sid, d["user_id"])].liquidation_pending = False
            book.named_ticks(sid, d, at)
        elif type_ == "RFQRequested":
            rfqs[d["rfq_id"]] = RFQ(
                id=d["rfq_id"],
                session_id=sid,
                taker=participants[(sid, d["taker_id"])],
                give_leg=d["give_leg"],
                get_leg=d["get_leg"],
                quantity=d["quantity"],
                status=RFQ.Status.OPEN,
                created_at=at,
            )
            live_by_rfq[d["rfq_id"]] = set()
        elif type_ == "QuoteProvided":
            quotes[d["quote_id"]] = Quote(
                id=d["quote_id"],
                rfq_id=d["rfq_id"],
                maker=participants[(sid, d["maker_id"])],
                rate=d["rate"],
                expires_at=_parse(d["expires_at"]),
                status=Quote.Status.LIVE,
                created_at=at,
            )
            live_by_rfq[d["rfq_id"]].add(d["quote_id"])
        elif type_ == "QuoteWithdrawn":
            quotes[d["quote_id"]].status = Quote.Status.WITHDRAWN
            live_by_rfq[quotes[d["quote_id"]].rfq_id].discard(d["quote_id"])
        elif type_ == "QuotesExpired":
            for quote_id in d["quote_ids"]:
                if quotes[quote_id].status == Quote.Status.LIVE:
                    quotes[quote_id].status = Quote.Status.EXPIRED
                    live_by_rfq[quotes[quote_id].rfq_id].discard(quote_id)
        elif type_ == "TradingClosed":
            sessions[sid].status, sessions[sid].closed_at = Session.Status.CLOSED, _parse(d["at"])
            _lapse(rfqs, quotes, live_by_rfq, sid, at)
            book.lapse(sid, at)
        elif type_ == "SessionCancelled":
            sessions[sid].status, sessions[sid].waiting_reason = Session.Status.CANCELLED, d["reason"]
        elif type_ == "RFQCancelled":
            _close(rfqs, quotes, live_by_rfq, d["rfq_id"], RFQ.Status.CANCELLED, at)
        elif type_ == "TradeExecuted":
            for who, deltas in ((d["taker_id"], d["taker_deltas"]), (d["maker_id"], d["maker_deltas"])):
                row = holdings[sid][who]
                for k, delta in enumerate(deltas):
                    row[k] += delta
            quotes[d["quote_id"]].status = Quote.Status.FILLED
            live_by_rfq[d["rfq_id"]].discard(d["quote_id"])
            _close(rfqs, quotes, live_by_rfq, d["rfq_id"], RFQ.Status.FILLED, at)
            trades.append(
                Trade(
                    id=d["trade_id"],
                    session_id=sid,
                    rfq_id=d["rfq_id"],
                    quote_id=d["quote_id"],
                    taker=participants[(sid, d["taker_id"])],
                    maker=participants[(sid, d["maker_id"])],
                    give_leg=d["give_leg"],
                    get_leg=d["get_leg"],
                    give_qty=d["give_qty"],
                    get_qty=d["get_qty"],
                    rate=d["rate"],
                    executed_at=at,
                    seq=seq,
                )
            )
        elif type_ == "SettlementWaiting":
            sessions[sid].waiting_reason = d["reason"]
        elif type_ == "TradingPaused":
            sessions[sid].paused_at, sessions[sid].pause_reason = at, d.get("reason", "")
        elif type_ == "TradingResumed":
            sessions[sid].paused_at, sessions[sid].pause_reason = None, ""
        elif type_ == "SessionSettled":
            session = sessions[sid]
            session.status, session.settled_at, session.waiting_reason = Session.Status.SETTLED, at, ""
            _lapse(rfqs, quotes, live_by_rfq, sid, at)
            book.lapse(sid, at)
            settlements.append(
                Settlement(
                    session_id=sid,
                    prices=d["prices"],
                    fixing=d["fixing"],
                    total=d["total"],
                    expected=d["expected"],
                    settled_at=at,
                    seq=seq,
                )
            )
            payouts.extend((sid, int(u), amount) for u, amount in sorted(d["payouts_by_id"].items()))
        elif type_ in ("CorporateActionScheduled", "CorporateActionApplied"):
            deferred.append((stream, type_, d, at))  # rare: projected by the projection's own handler, below
        else:
            raise ValueError(f"no loader for event type {type_}")
        sessions[sid].version = version
        sessions[sid].last_seq = seq

    with connection.cursor() as cursor:  # %s placeholders: any engine Django speaks
        cursor.executemany(INSERT_SQL.replace("?", "%s"), rows)
    store.sync_seq()
    Session.objects.bulk_create(sessions.values())
    Participant.objects.bulk_create(participants.values())  # SQLite >= 3.35 returns their ids
    Holding.objects.bulk_create(
        Holding(
            session_id=sid,
            participant=participants[(sid, user_id)],
            leg=leg,
            leg_index=k,
            qty=row[k],
            initial=initial[sid][user_id][k],
            reserved=book.reserved.get((sid, user_id), {}).get(k, 0),
        )
        for sid, matrix in holdings.items()
        for user_id, row in sorted(matrix.items())
        for k, leg in enumerate(sessions[sid].legs)
    )
    for rfq in rfqs.values():
        rfq.taker_id = rfq.taker.id
    RFQ.objects.bulk_create(rfqs.values(), batch_size=2000)
    for quote in quotes.values():
        quote.maker_id = quote.maker.id
    Quote.objects.bulk_create(quotes.values(), batch_size=2000)
    for trade in trades:
        trade.taker_id, trade.maker_id = trade.taker.id, trade.maker.id
    Trade.objects.bulk_create(trades, batch_size=2000)
    book.write(Order, Batch, Fill)
    sql.sync_id_sequences()  # the services take the next ids after these
    Settlement.objects.bulk_create(settlements)
    Payout.objects.bulk_create(
        Payout(session_id=sid, participant=participants[(sid, u)], amount=amount) for sid, u, amount in payouts
    )
    for stream, type_, d, at in deferred:  # moves the rows just written, as replay does
        projections.HANDLERS[type_](SimpleNamespace(stream=stream, at=at), d)
    return len(rows)


class _Batches:
    """Limit orders, reservations and cuts, as `markets.projections_batch` projects them."""

    def __init__(self, sessions: dict, participants: dict, holdings: dict) -> None:
        self.sessions, self.participants, self.holdings = sessions, participants, holdings
        self.orders: dict[int, Any] = {}
        self.resting: dict[str, dict[int, Any]] = {}  # per session, in order of id
        self.reserved: dict[tuple[str, int], dict[int, int]] = {}  # (session, user) -> {leg index: reserved}
        self.batches: list[Any] = []
        self.ticks: dict[int, tuple] = {}  # the oracle's ticks the cuts name: (session, leg, at, price)
        self.fills: list[tuple[Any, Any, dict]] = []

    def _reserve(self, order, units: int) -> None:
        sid = order.session_id
        k = self.sessions[sid].legs.index(order.give_leg)
        mine = self.reserved.setdefault((sid, order.participant.user_id), {})
        mine[k] = mine.get(k, 0) + units

    def placed(self, sid: str, d: dict, at: dt.datetime, seq: int) -> None:
        from markets.models import Order

        order = Order(
            id=d["order_id"],
            session_id=sid,
            participant=self.participants[(sid, d["user_id"])],
            give_leg=d["give_leg"],
            get_leg=d["get_leg"],
            quantity=d["quantity"],
            rest=d["quantity"],
            limit_rate=d["limit_rate"],
            batches_left=d["batches"],
            status=Order.Status.RESTING,
            placed_at=at,
            seq=seq,
        )
        self.orders[order.id] = order
        self.resting.setdefault(sid, {})[order.id] = order
        self._reserve(order, order.rest)

    def owns_any(self, participant, order_ids: list[int]) -> bool:
        return any(self.orders[i].participant is participant for i in order_ids)

    def named_ticks(self, sid: str, d: dict, at: dt.datetime) -> None:
        """The oracle's ticks a liquidation or a deleveraging names (a cut's are stored at the cut)."""
        for leg, tick in d["ticks"].items():
            self.ticks.setdefault(tick, (sid, leg, at, d["prices"][leg]))

    def close(self, order, status: str, at: dt.datetime) -> None:
        """The order leaves the book (cancelled, expired, lapsed) and frees what it still reserved."""
        self._reserve(order, -order.rest)
        order.status, order.closed_at = status, at
        del self.resting[order.session_id][order.id]

    def cleared(self, sid: str, d: dict, at: dt.datetime, seq: int) -> None:
        from markets.domain import orders as rules
        from markets.models import Batch, Order, Session

        result = d["result"]
        cleared = result["result"] == "cleared"
        fills = result.get("fills", []) if cleared else []
        batch = Batch(
            session_id=sid,
            number=d["batch"],
            cut_at=dt.datetime.fromisoformat(d["cut_at"]),
            outcome="cleared" if cleared else "none",
            reason="" if cleared else result.get("message", result.get("reason", "")),
            reference=d["reference"],
            ticks=d["ticks"],
            prices=dict(zip(d["legs"], result["prices"], strict=True)) if cleared else {},
            volume=d["volume"],
            orders=len(d["orders"]),
            filled=len(fills),
            seq=seq,
        )
        self.batches.append(batch)
        for leg, tick in d["ticks"].items():
            self.ticks[tick] = (sid, leg, batch.cut_at, d["reference"][leg])
        rows = self.holdings[sid]
        for f in fills:
            order = self.orders[f["order"]]
            user = order.participant.user_id
            rows[user][f["give"]] -= f["given"]
            rows[user][f["get"]] += f["received"]
            self._reserve(order, -f["given"])
            order.rest = f["rest"]
            self.fills.append((batch, order, f))
        for oid in d["orders"]:
            order = self.orders[oid]
            status, order.batches_left = rules.after_cut(order.rest, order.batches_left)
            if status == Order.Status.EXPIRED:
                self.close(order, status, at)
            elif status == Order.Status.FILLED:
                order.status, order.closed_at = status, at
                del self.resting[sid][oid]
        session: Session = self.sessions[sid]
        session.batches = d["batch"]
        session.next_cut_at = dt.datetime.fromisoformat(d["next_cut_at"]) if d["next_cut_at"] else None

    def lapse(self, sid: str, at: dt.datetime) -> None:
        """Trading is over: every resting order lapses; no cut is scheduled any more."""
        for order in list(self.resting.get(sid, {}).values()):
            self.close(order, "lapsed", at)
        self.sessions[sid].next_cut_at = None

    def write(self, order_model, batch_model, fill_model) -> None:
        from django.core.management.color import no_style
        from django.db import connection

        from oracle.models import Tick

        Tick.objects.bulk_create(
            (
                Tick(id=tick, session_id=sid, symbol=leg, at=at, price=price, source="bench")
                for tick, (sid, leg, at, price) in sorted(self.ticks.items())
            ),
            batch_size=2000,
        )
        if self.ticks and connection.vendor == "postgresql":  # the id sequence moves past the ids written
            with connection.cursor() as cursor:
                for statement in connection.ops.sequence_reset_sql(no_style(), [Tick]):
                    cursor.execute(statement)
        for order in self.orders.values():
            order.participant_id = order.participant.id
        order_model.objects.bulk_create(self.orders.values(), batch_size=2000)
        batch_model.objects.bulk_create(self.batches, batch_size=2000)  # their ids come back (SQLite >= 3.35)
        fill_model.objects.bulk_create(
            (
                fill_model(
                    batch_id=batch.id,
                    order_id=order.id,
                    participant_id=order.participant.id,
                    give_leg=order.give_leg,
                    get_leg=order.get_leg,
                    given=f["given"],
                    received=f["received"],
                    rest=f["rest"],
                )
                for batch, order, f in self.fills
            ),
            batch_size=2000,
        )


def _close(rfqs: dict, quotes: dict, live_by_rfq: dict[int, set[int]], rfq_id: int, status: str, at: Any) -> None:
    rfq = rfqs[rfq_id]
    rfq.status, rfq.closed_at = status, at
    for quote_id in live_by_rfq.pop(rfq_id, set()):
        quotes[quote_id].status = "lapsed"
    live_by_rfq[rfq_id] = set()


def _lapse(rfqs: dict, quotes: dict, live_by_rfq: dict[int, set[int]], sid: str, at: Any) -> None:
    """Trading is over in `sid`: its open RFQs and their live quotes lapse (as projections._lapse_open)."""
    for rfq in rfqs.values():
        if rfq.session_id == sid and rfq.status == "open":
            _close(rfqs, quotes, live_by_rfq, rfq.id, "lapsed", at)


def next_ids() -> tuple[int, tuple[int, int, int, int, int]]:
    """(next seq, next (rfq, quote, trade, order, tick) ids) of the scratch database, to continue its log."""
    from django.db.models import Max

    from ledger.models import Event
    from markets.models import RFQ, Order, Quote, Trade
    from oracle.models import Tick

    def following(model, field: str = "id") -> int:
        return (model.objects.aggregate(m=Max(field))["m"] or 0) + 1

    return following(Event, "seq"), (
        following(RFQ),
        following(Quote),
        following(Trade),
        following(Order),
        following(Tick),
    )
