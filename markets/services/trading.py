"""Trading: request quotes, quote, withdraw, cancel, and accept (the hot path)."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from django.db import connection

from markets import domain, sql
from markets.errors import Conflict, DomainError, Forbidden, NotFound
from markets.models import RFQ, Participant, Quote, Session, Trade
from markets.services import margin
from markets.services.command import (
    _command,
    _iso,
    _participant,
    _require_trading,
    _require_unpaused,
    _require_user,
    _retrying,
    _row_id,
)
from oracle import units

FREE = " not reserved by your resting orders"  # what an RFQ may take in a session with batch auctions too
MAX_QUOTE_TTL = 24 * 3600
DEFAULT_QUOTE_TTL = 60


@_retrying
def request_rfq(actor, session_id: str, give_leg: str, get_leg: str, quantity: object) -> RFQ:
    """A taker asks to give `quantity` of give_leg for get_leg."""
    qty = domain.parse_qty(quantity)
    with _command(session_id) as cmd:
        session = cmd.session
        me = _participant(session, actor) if actor is not None else None
        if me is None:
            raise Forbidden("RFQs are requested by a participant", "forbidden")
        gi = domain.leg_index(session.legs, give_leg)
        ge = domain.leg_index(session.legs, get_leg)
        if gi == ge:
            raise DomainError("The give leg and the get leg must differ", "same_leg")
        if not me.holds:
            raise Forbidden("Only traders and makers request quotes", "forbidden")
        if not session.trades_by_rfq:
            raise Conflict(f"Session {session.id} trades by batch auction only: place a limit order instead", "not_rfq")
        _require_trading(session, cmd.now)
        _require_unpaused(session)
        held = sql.holding(me.id, gi)
        short = margin.room(session)[gi]
        if held + short < qty:
            if short:
                raise domain.short_of("you", held, short, session.legs[gi], qty)
            raise DomainError(
                f"Insufficient inventory: you hold {domain.qty_str(held)} {session.legs[gi]}"
                f"{FREE if session.trades_by_batch else ''}, not {domain.qty_str(qty)}",
                "insufficient_inventory",
                "conflict",
            )
        rfq_id = sql.next_id(RFQ)
        cmd.emit(
            "RFQRequested",
            {
                "rfq_id": rfq_id,
                "taker_id": me.user_id,
                "give_leg": session.legs[gi],
                "get_leg": session.legs[ge],
                "quantity": qty,
            },
        )
    rfq = sql.get_by_pk(RFQ, rfq_id)  # as the projection wrote it, one prepared statement
    rfq.taker = me
    return rfq


def _get_rfq(rfq_id: object) -> RFQ:
    try:
        return RFQ.objects.select_related("session", "taker").get(id=_row_id(rfq_id, "RFQ", "rfq_not_found"))
    except RFQ.DoesNotExist:
        raise NotFound(f"Unknown RFQ {str(rfq_id)[:20]!r}", "rfq_not_found") from None


def _rfq_row(rfq_id: object) -> RFQ:
    """The RFQ alone (no joined rows), by one prepared statement: what quoting and cancelling read, before
    and under the session's lock."""
    number = _row_id(rfq_id, "RFQ", "rfq_not_found")
    rfq = sql.get_by_pk(RFQ, number)
    if rfq is None:
        raise NotFound(f"Unknown RFQ {str(rfq_id)[:20]!r}", "rfq_not_found")
    return rfq


def _get_quote(quote_id: object) -> Quote:
    try:
        return Quote.objects.select_related("rfq", "maker", "rfq__taker").get(
            id=_row_id(quote_id, "quote", "quote_not_found")
        )
    except Quote.DoesNotExist:
        raise NotFound(f"Unknown quote {str(quote_id)[:20]!r}", "quote_not_found") from None


@_retrying
def provide_quote(actor, rfq_id: object, rate: object, ttl_seconds: object = DEFAULT_QUOTE_TTL) -> Quote:
    """A maker quotes `rate` units of the get leg per unit of the give leg, live for ttl_seconds."""
    rate_base = domain.parse_rate(rate)
    try:  # the one reader of numbers: Arabic-Indic digits, `1_0` and `+5` are not seconds (int() read them)
        ttl = units.read_whole(ttl_seconds, "The quote's lifetime", low=1, high=MAX_QUOTE_TTL, unit="seconds")
    except units.InvalidNumber as exc:
        raise DomainError(exc.message, "invalid_ttl") from None
    rfq = _rfq_row(rfq_id)
    with _command(rfq.session_id) as cmd:
        rfq = _rfq_row(rfq_id)  # under the session's lock: as it stands now
        me = _participant(cmd.session, actor) if actor is not None else None
        if me is None or me.role != Participant.Role.MAKER:
            raise Forbidden("Only market makers can quote", "not_maker")
        if rfq.taker_id == me.id:
            raise Forbidden("You cannot quote on your own RFQ", "own_rfq")
        _require_trading(cmd.session, cmd.now)
        _require_unpaused(cmd.session)
        if rfq.status != RFQ.Status.OPEN:
            raise Conflict(f"RFQ {rfq.id} is {rfq.status}: it takes no more quotes", "rfq_closed")
        receive = domain.trade_receive(rfq.quantity, rate_base)
        if receive <= 0:
            raise DomainError("At this rate the trade would deliver 0 units: quote a higher rate", "trade_too_small")
        ge = domain.leg_index(cmd.session.legs, rfq.get_leg)
        held = sql.holding(me.id, ge)
        short = margin.room(cmd.session)[ge]
        if short and held + short < receive:
            raise domain.short_of("you", held, short, rfq.get_leg, receive)
        if held + short < receive:  # checked again at accept: the holding may change in between
            raise DomainError(
                f"Insufficient inventory: you hold {domain.qty_str(held)} {rfq.get_leg}"
                f"{FREE if cmd.session.trades_by_batch else ''}; at rate "
                f"{domain.rate_str(rate_base)} this quote would deliver {domain.qty_str(receive)} {rfq.get_leg}",
                "insufficient_inventory",
                "conflict",
            )
        if cmd.session.shorting:  # the maker's side as if the quote were accepted now (again at accept)
            gi = domain.leg_index(cmd.session.legs, rfq.give_leg)
            change = [0] * len(cmd.session.legs)
            change[gi], change[ge] = rfq.quantity, -receive
            margin.check_moves(cmd, {me.user_id: change}, me=me.user_id)
        quote_id = sql.next_id(Quote)
        expires = cmd.now + dt.timedelta(seconds=ttl)
        cmd.emit(
            "QuoteProvided",
            {
                "quote_id": quote_id,
                "rfq_id": rfq.id,
                "maker_id": me.user_id,
                "rate": rate_base,
                "expires_at": _iso(expires),
            },
        )
    quote = sql.get_by_pk(Quote, quote_id)  # as the projection wrote it, one prepared statement
    quote.maker, quote.rfq = me, rfq
    return quote


@_retrying
def withdraw_quote(actor, quote_id: object) -> Quote:
    with _command(lock=lambda: _session_of_quote(quote_id)) as cmd:
        quote = sql.get_by_pk(Quote, domain.parse_id(quote_id))  # under the session's lock: as it stands now
        if actor is not None and _participant(cmd.session, actor).id != quote.maker_id:
            raise Forbidden("Only the maker who gave a quote can withdraw it", "not_your_quote")
        _require_trading(cmd.session, cmd.now)
        if quote.status not in (Quote.Status.LIVE, Quote.Status.EXPIRED):
            raise Conflict(f"Quote {quote.id} is {quote.status}: nothing to withdraw", "quote_not_live")
        if quote.status == Quote.Status.EXPIRED or quote.expires_at <= cmd.now:
            raise Conflict(
                f"Quote {quote.id} expired at {quote.expires_at:%H:%M:%S}: nothing to withdraw", "quote_expired"
            )
        cmd.emit("QuoteWithdrawn", {"quote_id": quote.id, "rfq_id": quote.rfq_id})
    return _get_quote(quote_id)


@_retrying
def cancel_rfq(actor, rfq_id: object) -> RFQ:
    rfq = _rfq_row(rfq_id)
    with _command(rfq.session_id) as cmd:
        rfq = _rfq_row(rfq_id)  # under the session's lock: as it stands now
        if actor is not None and _participant(cmd.session, actor).id != rfq.taker_id:
            raise Forbidden("Only the RFQ's taker can cancel it", "not_your_rfq")
        _require_trading(cmd.session, cmd.now)
        if rfq.status != RFQ.Status.OPEN:
            raise Conflict(f"RFQ {rfq.id} is already {rfq.status}", "rfq_closed")
        cmd.emit("RFQCancelled", {"rfq_id": rfq.id})
    return _get_rfq(rfq_id)


class _Acceptance(NamedTuple):
    """The quote, its RFQ and both parties as the accept reads them: one joined row."""

    session_id: str
    quote_id: int
    quote_status: str
    expires_at: dt.datetime
    rate: int
    maker_id: int
    maker_user_id: int
    rfq_id: int
    rfq_status: str
    taker_id: int
    taker_user_id: int
    give_leg: str
    get_leg: str
    quantity: int
    taker_name: str
    taker_role: str
    maker_name: str
    maker_role: str
    taker_shown: str  # the display names, for the answer
    maker_shown: str


def _acceptance(quote_id: object) -> _Acceptance:
    """Accepting is the hot path: one plain statement instead of four ORM queries (markets.sql)."""
    qid = domain.parse_id(quote_id)
    row = sql.acceptance_row(qid) if qid is not None else None
    if row is None:
        raise NotFound(f"Unknown quote {str(quote_id)[:20]!r}", "quote_not_found")
    return _Acceptance(*row)


def _session_of_quote(quote_id: object) -> Session:
    """The quote's session, locked, found in the statement that locks it."""
    qid = domain.parse_id(quote_id)
    session = sql.session_of_quote(qid, for_update=True) if qid is not None else None
    if session is None:
        raise NotFound(f"Unknown quote {str(quote_id)[:20]!r}", "quote_not_found")
    return session


@_retrying
def accept_quote(actor, quote_id: object) -> Trade:
    """The RFQ's taker accepts a live quote: both inventories are checked now, in this transaction."""
    _require_user(actor)
    with _command(lock=lambda: _session_of_quote(quote_id)) as cmd:
        found = _acceptance(quote_id)  # under the session's lock: as it stands now
        session = cmd.session
        if actor is not None and actor.pk != found.taker_user_id:
            _participant(session, actor)  # "you have not joined" is the clearer refusal when it applies
            raise Forbidden("Only the RFQ's taker can accept its quotes", "not_your_rfq")
        _require_trading(session, cmd.now)
        _require_unpaused(session)
        if found.rfq_status != RFQ.Status.OPEN:
            raise Conflict(f"RFQ {found.rfq_id} is already {found.rfq_status}", "rfq_closed")
        if found.quote_status not in (Quote.Status.LIVE, Quote.Status.EXPIRED):
            raise Conflict(
                f"Quote {found.quote_id} is {found.quote_status}: it can no longer be accepted", "quote_not_live"
            )
        if found.quote_status == Quote.Status.EXPIRED or found.expires_at <= cmd.now:
            raise Conflict(f"Quote {found.quote_id} expired at {found.expires_at:%H:%M:%S}", "quote_expired")
        taker_row, maker_row = sql.two_holdings(found.taker_id, found.maker_id)
        move = domain.plan_trade(
            session.legs,
            found.give_leg,
            found.get_leg,
            found.quantity,
            found.rate,
            taker_row,
            maker_row,
            margin.room(session) if session.shorting else None,
        )
        taker_deltas, maker_deltas = move.deltas(len(session.legs))
        domain.check_zero_sum(taker_deltas, maker_deltas)
        if session.shorting:
            margin.check_moves(
                cmd,
                {found.taker_user_id: taker_deltas, found.maker_user_id: maker_deltas},
                me=found.taker_user_id,
                names={found.maker_user_id: f"the maker {found.maker_shown}"},
                # Without orders nothing is reserved: the rows just read are what they hold.
                held=None
                if session.trades_by_batch
                else {found.taker_user_id: taker_row, found.maker_user_id: maker_row},
            )
        trade_id = sql.next_id(Trade)
        event = cmd.emit(
            "TradeExecuted",
            {
                "trade_id": trade_id,
                "rfq_id": found.rfq_id,
                "quote_id": found.quote_id,
                "taker_id": found.taker_user_id,
                "maker_id": found.maker_user_id,
                "give_leg": found.give_leg,
                "get_leg": found.get_leg,
                "give_qty": move.give_qty,
                "get_qty": move.get_qty,
                "rate": found.rate,
                "taker_deltas": taker_deltas,
                "maker_deltas": maker_deltas,
            },
        )
    # The row just committed, as the projection wrote it (no need to read it back).
    trade = Trade(
        id=trade_id,
        session_id=session.id,
        rfq_id=found.rfq_id,
        quote_id=found.quote_id,
        taker_id=found.taker_id,
        maker_id=found.maker_id,
        give_leg=found.give_leg,
        get_leg=found.get_leg,
        give_qty=move.give_qty,
        get_qty=move.get_qty,
        rate=found.rate,
        executed_at=event.at,
        seq=event.seq,
    )
    # Both parties as they joined, so the answer names them without another read.
    trade.taker = _stored(
        Participant(
            id=found.taker_id,
            session_id=session.id,
            user_id=found.taker_user_id,
            username=found.taker_name,
            display_name=found.taker_shown,
            role=found.taker_role,
        )
    )
    trade.maker = _stored(Participant(id=found.maker_id, session_id=session.id, user_id=found.maker_user_id,
                                      username=found.maker_name, display_name=found.maker_shown,
                                      role=found.maker_role))  # fmt: skip
    return _stored(trade)


def _stored[M](row: M) -> M:
    """A model instance built from what was just written, marked as the stored row it equals."""
    row._state.adding = False  # type: ignore[attr-defined]
    row._state.db = connection.alias  # type: ignore[attr-defined]
    return row
