"""The reference model of what the market must refuse: one small description of the rules, written apart
from the services, shared by the simulator (`manage.py simulate`) and the property test
(markets/tests/test_stateful.py). Each function gets the facts a caller keeps (its own book, or the
projection it read) and returns the codes of every refusal that applies: none means the command must
succeed; otherwise it must fail with one of them and write nothing.

It is a test oracle: if it and the services disagree, one of them is wrong, and the run says which
command, with which facts.

Batch auctions (a session's `mechanism` batch or both) add limit orders: what an order may give is what its
owner holds less what its resting orders reserve (and so for RFQs, quotes and accepts in a session that does
both), at least `min_order`, at most `max_orders` resting each; a cancel is refused from the instant of the
cut that holds the order until the cut is recorded; `book` says which orders a cut clears and `after_cut`
what it leaves of each (restated from the rules, not imported).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from markets import domain
from markets.domain import orders as order_rules
from markets.simulation import margin_model
from markets.simulation.margin_model import Shorting
from oracle import units

MAX_QUOTE_TTL = 24 * 3600  # the services' bound, restated: the model does not import what it checks
MAX_GOOD_FOR = 1000  # an order lives at most this many batches unless good till cancelled (restated)
HOLDERS = domain.HOLDER_ROLES


@dataclass(frozen=True)
class Market:
    """The facts every rule reads: who is in the session and as what, what each holds, where it stands."""

    legs: Sequence[str]
    roles: Mapping[str, str]  # participant -> organiser / trader / maker; anyone else is an outsider
    holdings: Mapping[str, Sequence[int]]  # holder -> x per leg
    phase: str  # created, open, closed, settled, cancelled (as of now)
    now: dt.datetime
    paused: bool = False  # the organiser paused trading (and has not resumed it)
    mechanism: str = "rfq"  # rfq, batch or both
    reserved: Mapping[str, Sequence[int]] = field(default_factory=dict)  # holder -> reserved per leg
    resting: Mapping[str, int] = field(default_factory=dict)  # holder -> orders resting
    max_orders: int = 0
    min_order: int = 0
    next_cut: dt.datetime | None = None  # the scheduled cut of the resting book
    trading_ends: dt.datetime | None = None  # t2 of a timed session
    shorting: Shorting | None = None  # bounded shorting: the settings, q and the latest prices (None: off)

    def held(self, who: str, leg: str) -> int:
        return self.holdings[who][list(self.legs).index(leg)]

    def free(self, who: str, leg: str) -> int:
        """What `who` may give of `leg`: what it holds less what its resting orders reserve."""
        reserved = self.reserved.get(who)
        return self.held(who, leg) - (reserved[list(self.legs).index(leg)] if reserved else 0)

    def cannot_give(self, who: str, leg: str, need: int) -> bool:
        """Whether `need` of `leg` is more than `who` may give: what is free plus its short limit (or 0)."""
        return self.free(who, leg) + margin_model.room(self.shorting, list(self.legs).index(leg)) < need

    @property
    def by_rfq(self) -> bool:
        return order_rules.by_rfq(self.mechanism)

    @property
    def by_batch(self) -> bool:
        return order_rules.by_batch(self.mechanism)


@dataclass(frozen=True)
class Order:
    id: int
    owner: str
    give_leg: str
    get_leg: str
    rest: int
    limit: int
    left: int | None  # batches it still lives; None: good till cancelled
    status: str  # resting, filled, cancelled, expired, lapsed
    placed_at: dt.datetime


@dataclass(frozen=True)
class Rfq:
    id: int
    taker: str
    give_leg: str
    get_leg: str
    quantity: int
    status: str  # open, filled, cancelled, lapsed


@dataclass(frozen=True)
class Quote:
    id: int
    rfq: Rfq
    maker: str
    rate: int
    expires_at: dt.datetime
    status: str  # live, withdrawn, filled, lapsed, expired


_TRADING = {
    "created": "session_not_open",
    "settled": "session_settled",
    "closed": "trading_closed",
    "cancelled": "session_cancelled",
}


def _trading(m: Market) -> set[str]:
    return {_TRADING[m.phase]} if m.phase in _TRADING else set()


def _new_business(m: Market) -> set[str]:
    """What refuses a new RFQ, quote or accept: the trading phase, then the organiser's pause (a pause
    refuses no cancel or withdrawal)."""
    if m.phase in _TRADING:
        return {_TRADING[m.phase]}
    return {"trading_paused"} if m.paused else set()


def _who(m: Market, actor: str) -> set[str]:
    return set() if actor in m.roles else {"not_a_participant"}


def _parsed(parse, value: object) -> tuple[int | None, set[str]]:
    try:
        return parse(value), set()
    except domain.DomainError as exc:
        return None, {exc.code}


_LEG_CHARS = re.compile(r"[\x20-\x7e\t]*", re.ASCII)  # printable ASCII: anything else never names a leg


def _leg(m: Market, name: object) -> str | None:
    """The leg `name` means: ASCII case and spacing do not count; nothing else is folded (restated)."""
    if not isinstance(name, str) or not _LEG_CHARS.fullmatch(name):
        return None
    key = " ".join(name.split()).lower()
    return next((leg for leg in m.legs if " ".join(leg.split()).lower() == key), None)


def _pair_refusals(give: object, get: object, give_leg: str | None, get_leg: str | None) -> set[str]:
    """What naming a pair of legs is refused with (an RFQ's and an order's): a look-alike name (Kelvin sign,
    no-break space) is not the leg it resembles, an unknown one, or the same leg twice."""
    refusals = set()
    for name, leg in ((give, give_leg), (get, get_leg)):
        if isinstance(name, str) and not _LEG_CHARS.fullmatch(name):
            refusals.add("invalid_leg_name")
        elif leg is None:
            refusals.add("unknown_leg")
    if give_leg is not None and give_leg == get_leg:
        refusals.add("same_leg")
    return refusals


def rfq(m: Market, actor: str, give: object, get: object, quantity: object) -> set[str]:
    qty, refusals = _parsed(domain.parse_qty, quantity)
    refusals |= _who(m, actor) | _new_business(m)
    give_leg, get_leg = _leg(m, give), _leg(m, get)
    refusals |= _pair_refusals(give, get, give_leg, get_leg)
    role = m.roles.get(actor)
    if role == "organiser":
        refusals.add("forbidden")
    if not m.by_rfq:
        refusals.add("not_rfq")
    if role in HOLDERS and give_leg is not None and qty is not None and m.cannot_give(actor, give_leg, qty):
        refusals.add(margin_model.short_code(m.shorting))
    return refusals


def _ttl_ok(ttl: object) -> bool:
    """Whole seconds, 1 to a day, read by the one reader of numbers (never int(): `1_0` is not 10)."""
    try:
        number = units.read_decimal(ttl)
    except units.InvalidNumber:
        return False
    return 1 <= number <= MAX_QUOTE_TTL and number == number.to_integral_value()


def quote(m: Market, actor: str, on: Rfq | None, rate: object, ttl: object) -> set[str]:
    rate_units, refusals = _parsed(domain.parse_rate, rate)
    if not _ttl_ok(ttl):
        refusals.add("invalid_ttl")
    if on is None:
        return refusals | {"rfq_not_found"}
    refusals |= _who(m, actor) | _new_business(m)
    if actor in m.roles and m.roles[actor] != "maker":
        refusals.add("not_maker")
    if on.taker == actor:
        refusals.add("own_rfq")
    if on.status != "open":
        refusals.add("rfq_closed")
    if rate_units is not None:
        receive = domain.trade_receive(on.quantity, rate_units)
        if receive <= 0:
            refusals.add("trade_too_small")
        elif m.roles.get(actor) == "maker":
            if m.cannot_give(actor, on.get_leg, receive):
                refusals.add(margin_model.short_code(m.shorting))  # a maker may not quote what it could never deliver
            _, change = margin_model.trade_deltas(m.legs, on, receive)
            refusals |= margin_model.move_refusals(m.shorting, m.holdings, {actor: change})  # as if accepted now
    return refusals


def _expired(m: Market, q: Quote) -> bool:
    return q.status == "expired" or (q.status == "live" and q.expires_at <= m.now)


def accept(m: Market, actor: str, q: Quote | None) -> set[str]:
    if q is None:
        return {"quote_not_found"}
    refusals = _who(m, actor) | _new_business(m)
    if actor != q.rfq.taker:
        refusals.add("not_your_rfq")
    if q.rfq.status != "open":
        refusals.add("rfq_closed")
    if q.status not in ("live", "expired"):
        refusals.add("quote_not_live")
    if _expired(m, q):
        refusals.add("quote_expired")
    receive = domain.trade_receive(q.rfq.quantity, q.rate)
    if receive <= 0:
        refusals.add("trade_too_small")
    if m.cannot_give(q.rfq.taker, q.rfq.give_leg, q.rfq.quantity) or m.cannot_give(q.maker, q.rfq.get_leg, receive):
        refusals.add(margin_model.short_code(m.shorting))
    if receive > 0:
        taker, maker = margin_model.trade_deltas(m.legs, q.rfq, receive)
        refusals |= margin_model.move_refusals(m.shorting, m.holdings, {q.rfq.taker: taker, q.maker: maker})
    return refusals


def cancel(m: Market, actor: str, on: Rfq | None) -> set[str]:
    if on is None:
        return {"rfq_not_found"}
    refusals = _who(m, actor) | _trading(m)
    if actor != on.taker:
        refusals.add("not_your_rfq")
    if on.status != "open":
        refusals.add("rfq_closed")
    return refusals


def withdraw(m: Market, actor: str, q: Quote | None) -> set[str]:
    if q is None:
        return {"quote_not_found"}
    refusals = _who(m, actor) | _trading(m)
    if actor != q.maker:
        refusals.add("not_your_quote")
    if q.status not in ("live", "expired"):
        refusals.add("quote_not_live")
    elif _expired(m, q):
        refusals.add("quote_expired")
    return refusals


def settle(
    m: Market, actor: str | None, prices: Mapping[str, object] | None, *, manual_allowed: bool = True
) -> set[str]:
    """A manual session settled by `actor` (None: the system) at `prices` (None: the fixing)."""
    refusals = set()
    if actor is not None and m.roles.get(actor) != "organiser":
        refusals.add("not_organiser" if actor in m.roles else "not_a_participant")
    if m.phase == "settled":
        refusals.add("already_settled")
    elif m.phase not in ("open", "closed"):
        refusals.add("session_not_open")
    if not manual_allowed:
        refusals.add("manual_disabled")
    for value in (prices or {}).values():
        refusals |= _parsed(domain.parse_price, value)[1]
    return refusals


def _organiser(m: Market, actor: str | None) -> set[str]:
    if actor is None or m.roles.get(actor) == "organiser":
        return set()
    return {"not_organiser" if actor in m.roles else "not_a_participant"}


def pause(m: Market, actor: str | None, reason: object = "") -> set[str]:
    """The organiser (None: the system) pauses trading of an open session that is not paused yet."""
    refusals = _organiser(m, actor) | _trading(m)
    if m.phase not in _TRADING and m.paused:
        refusals.add("already_paused")
    text = str(reason or "").strip()
    if "\x00" in text or len(text) > 500:
        refusals.add("invalid_reason")
    return refusals


def resume(m: Market, actor: str | None) -> set[str]:
    """The organiser (None: the system) resumes trading of an open session that is paused."""
    refusals = _organiser(m, actor) | _trading(m)
    if m.phase not in _TRADING and not m.paused:
        refusals.add("not_paused")
    return refusals


# ---------------------------------------------------------------- batch auctions


def _lifetime(good_for: object, gtc: object) -> set[str]:
    """One batch by default, `good_for` N (a whole number, 1 to 1000) or good till cancelled, not both."""
    if gtc not in (True, False, None):
        return {"invalid_lifetime"}
    if good_for in (None, ""):
        return set()
    if gtc:
        return {"invalid_lifetime"}
    try:
        number = units.read_decimal(good_for)
    except units.InvalidNumber:
        return {"invalid_lifetime"}
    ok = 1 <= number <= MAX_GOOD_FOR and number == number.to_integral_value()
    return set() if ok else {"invalid_lifetime"}


def place_order(
    m: Market, actor: str, give: object, get: object, quantity: object, limit: object, good_for=None, gtc=False
) -> set[str]:
    """A limit order: it gives at least `min_order`, its owner has fewer than `max_orders` resting, and it
    gives no more than is free (held less reserved)."""
    qty, refusals = _parsed(domain.parse_qty, quantity)
    refusals |= _parsed(domain.parse_rate, limit)[1] | _lifetime(good_for, gtc)
    refusals |= _who(m, actor) | _new_business(m)
    give_leg, get_leg = _leg(m, give), _leg(m, get)
    refusals |= _pair_refusals(give, get, give_leg, get_leg)
    role = m.roles.get(actor)
    if role == "organiser":
        refusals.add("forbidden")
    if not m.by_batch:
        return refusals | {"not_batch"}  # a session without batch auctions has no book to rest on
    if role in HOLDERS and qty is not None:
        if qty < m.min_order:
            refusals.add("order_too_small")
        if m.resting.get(actor, 0) >= m.max_orders:
            refusals.add("too_many_orders")
        refusals |= margin_model.order_refusals(m, actor, give_leg, get_leg, qty, limit)
    return refusals


def cancel_order(m: Market, actor: str, order: Order | None) -> set[str]:
    """The owner cancels a resting order while trading lasts, but not from the instant of the cut that holds
    it until that cut is recorded (while trading is paused nothing is cut, so it may)."""
    if order is None:
        return {"order_not_found"}
    refusals = _who(m, actor) | _trading(m)
    if actor != order.owner:
        refusals.add("not_your_order")
    if order.status != "resting":
        refusals.add("order_closed")
    if m.next_cut is not None and order.placed_at < m.next_cut <= m.now and not m.paused:
        refusals.add("batch_cut")
    return refusals


def clear_now(m: Market, actor: str) -> set[str]:
    """The organiser cuts the book now: a batch session, trading, not paused."""
    refusals = _organiser(m, actor) | _new_business(m)
    if not m.by_batch:
        refusals.add("not_batch")
    return refusals


def cut_due(m: Market) -> bool:
    """The scheduler cuts when the clock reaches the next cut, unless paused, or trading is over, or the
    cut falls at or after t2 (trading closes instead)."""
    return (
        m.by_batch
        and m.next_cut is not None
        and m.next_cut <= m.now
        and not m.paused
        and m.phase == "open"
        and (m.trading_ends is None or m.next_cut < m.trading_ends)
    )


def book(orders: Iterable[Order], cut: dt.datetime) -> list[int]:
    """The ids a cut clears: every resting order placed strictly before it."""
    return sorted(o.id for o in orders if o.status == "resting" and o.placed_at < cut)


def after_cut(rest: int, left: int | None) -> tuple[str, int | None]:
    """What a cut leaves of an order of its book: filled when nothing rests; expired when its last batch
    passed; otherwise resting, one batch fewer to live (good till cancelled: as it was)."""
    if rest == 0:
        return "filled", left
    if left is None:
        return "resting", None
    return ("expired", 0) if left <= 1 else ("resting", left - 1)
