"""What the bots decide, as pure functions of what they see: no Django, no I/O, no floats.

A maker quotes at the oracle-implied rate (give price / get price) less a spread in its favour, and only
what it holds above a floor per leg, counting what its live quotes already promise. A noise taker asks
to give a fraction of one holding for another leg and accepts the quote that gives it most, now and then
letting an RFQ go, and cancels one left open too long. Every choice draws from the one `random.Random`
the caller passes in, in a fixed order over data sorted by id, so the same seed and the same market give
the same intents. In sessions that trade by batch auction the bots place limit orders instead (or as
well, in a session that does both): `markets.bots.auction`.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal

from markets import domain
from markets.bots import shorting
from markets.domain import orders as order_rules
from markets.domain.margin import OFF, MarginSettings

BPS = 10_000
RFQ_STEP = 10**4  # RFQ sizes are whole hundredths of a unit (10**-2), as a person would type them


@dataclass(frozen=True)
class Params:
    """How the bots behave; the defaults make a lively demo."""

    spread_min_bps: int = 10  # a maker's spread below the implied rate, drawn per quote
    spread_max_bps: int = 60
    floor_pct: int = 20  # a maker never quotes away the last floor_pct% of what it started with of a leg
    quote_ttl: int = 30  # seconds a maker's quote lives
    rfq_chance_pct: int = 60  # a taker with no RFQ open asks for one with this chance per step
    size_min_pct: int = 5  # an RFQ gives this share of the taker's holding of the give leg...
    size_max_pct: int = 30  # ...up to this one
    accept_chance_pct: int = 80  # with quotes in, a taker accepts the best with this chance per step
    stale_seconds: int = 20  # a taker cancels its RFQ once it has been open this long
    # Batch auctions (markets.bots.auction): a maker's orders ask the fair rate plus its spread (above);
    order_pairs: int = 2  # pairs of legs a maker places two-sided orders on, each batch
    order_size_pct: int = 10  # each maker order gives this share of what it may give above its floor
    order_chance_pct: int = 60  # a taker with no order resting places one with this chance per step
    cross_max_bps: int = 100  # a taker's limit lies 0 to this far through the fair rate (it gives that up)
    short_chance_pct: int = 40  # in a session with shorting, a taker's RFQ may give beyond what it holds

    def __post_init__(self) -> None:
        if not 0 <= self.spread_min_bps <= self.spread_max_bps < BPS:
            raise ValueError("spreads must satisfy 0 <= min <= max < 10000 bps")
        if not 0 <= self.floor_pct <= 100 or not 1 <= self.size_min_pct <= self.size_max_pct <= 100:
            raise ValueError("floor and sizes are percentages (sizes 1 to 100, min <= max)")
        if self.quote_ttl < 1 or self.stale_seconds < 1:
            raise ValueError("the quote lifetime and the staleness are at least a second")
        if not 0 <= self.cross_max_bps < BPS or self.order_pairs < 0 or not 1 <= self.order_size_pct <= 100:
            raise ValueError("orders: cross within 0 to 9999 bps, pairs 0 or more, sizes 1 to 100%")


@dataclass(frozen=True)
class RfqView:
    id: int
    taker: str
    give_leg: str
    get_leg: str
    quantity: int
    created_at: dt.datetime


@dataclass(frozen=True)
class QuoteView:
    id: int
    rfq_id: int
    maker: str
    rate: int
    expires_at: dt.datetime


@dataclass(frozen=True)
class OrderView:
    """A bot's own resting limit order (nobody else's: they are sealed)."""

    id: int
    owner: str
    give_leg: str
    get_leg: str
    rest: int
    limit: int
    placed_at: dt.datetime


@dataclass(frozen=True)
class Market:
    """One session as a bot sees it: open RFQs and the quotes live on them (by id), latest prices (base
    units, priced legs only), and each bot's holdings now (what it may give: held less what its resting
    orders reserve) and at opening (leg -> base units). A session with batch auctions adds how it trades,
    the bots' own resting orders (by id), its anti-spam settings and its next cut."""

    legs: tuple[str, ...]
    prices: dict[str, int]
    rfqs: tuple[RfqView, ...]
    quotes: tuple[QuoteView, ...]
    holdings: dict[str, dict[str, int]]
    initial: dict[str, dict[str, int]]
    # The most any maker of the session (bot or person) holds of each leg: a taker asks for no more than a
    # maker could pay, so a demo's first RFQs get quotes. Empty: unknown, any size.
    deliverable: dict[str, int] = field(default_factory=dict)
    mechanism: str = "rfq"  # rfq, batch or both
    orders: tuple[OrderView, ...] = ()
    max_orders: int = 0  # resting orders per participant at most
    min_order: int = 0  # the least an order may give, base units
    next_cut: dt.datetime | None = None  # the instant the book is cut (orders placed before it are in it)
    # Bounded shorting (empty: off): the most anyone may be short of each leg (also the pool's cap), what
    # the pool is short of each leg now, and the margin settings (`markets.bots.shorting` reads them).
    short_caps: dict[str, int] = field(default_factory=dict)
    gross_short: dict[str, int] = field(default_factory=dict)
    margin: MarginSettings = OFF
    # Inside the fixing window (a rule other than `last`): what the rule would make of each leg now. A
    # maker prices on it (`marks`): the settlement pays at the fixing, not at the last tick.
    fixing: dict[str, int] = field(default_factory=dict)

    @property
    def marks(self) -> dict[str, int]:
        """The prices a maker values at: the fixing so far where the window has begun, else the latest."""
        return self.prices | self.fixing if self.fixing else self.prices

    @property
    def by_rfq(self) -> bool:
        return order_rules.by_rfq(self.mechanism)

    @property
    def by_batch(self) -> bool:
        return order_rules.by_batch(self.mechanism)


@dataclass(frozen=True)
class Intent:
    """One service call a bot means to make. `ref` is the RFQ (quote, cancel) or quote (accept, withdraw)
    it acts on (for cancel_order: the order); legs, quantity and rate (an order's limit) say what, so a log
    line and a comparison need no id."""

    bot: str
    kind: str  # rfq | quote | accept | cancel | withdraw | order | cancel_order
    give_leg: str
    get_leg: str
    quantity: int
    rate: int | None = None
    ref: int | None = None
    ttl: int | None = None


# ---------------------------------------------------------------- numbers


def implied_rate(give_price: int, get_price: int) -> Decimal:
    """Units of the get leg one unit of the give leg is worth at these prices, exact to 30 digits (for
    display and checks; quotes use `maker_rate`, exact integers)."""
    if give_price <= 0 or get_price <= 0:
        raise ValueError("prices must be positive")
    return Decimal(give_price) / Decimal(get_price)


def maker_rate(give_price: int, get_price: int, spread_bps: int) -> int:
    """The rate a maker quotes (base units of 10**-8): give_price / get_price less `spread_bps`, rounded
    down, so the maker never quotes above the implied rate (a higher rate gives the taker more)."""
    if give_price <= 0 or get_price <= 0:
        raise ValueError("prices must be positive")
    return give_price * domain.RATE_SCALE * (BPS - spread_bps) // (get_price * BPS)


def leg_floor(initial: int, floor_pct: int) -> int:
    """What a maker keeps of a leg whatever it is asked: floor_pct% of its opening holding, rounded up."""
    return -(-initial * floor_pct // 100)


def rfq_size(held: int, pct: int) -> int:
    """`pct`% of a holding, rounded down to whole hundredths of a unit (0 if that is less than one)."""
    amount = held * pct // 100
    return amount - amount % RFQ_STEP


def best_quote(quotes: list[QuoteView]) -> QuoteView | None:
    """The quote giving the taker most of the get leg: the highest rate (the earliest of equal rates)."""
    return max(quotes, key=lambda q: (q.rate, -q.id), default=None)


# ---------------------------------------------------------------- the bots


@dataclass
class Maker:
    name: str
    params: Params

    def plan(self, market: Market, rng: random.Random) -> list[Intent]:
        """Withdraw live quotes the prices have moved above the implied rate, then quote every open RFQ
        of someone else it has no live quote on and can deliver above its floor."""
        intents: list[Intent] = []
        rfqs = {r.id: r for r in market.rfqs}
        mine = [q for q in market.quotes if q.maker == self.name]
        held = market.holdings.get(self.name, {})
        committed: dict[str, int] = {}
        quoted: set[int] = set()
        for quote in mine:
            rfq = rfqs[quote.rfq_id]
            quoted.add(rfq.id)
            if _priced(market, rfq) and quote.rate > maker_rate(*_pair(market, rfq), 0):
                intents.append(self._intent("withdraw", rfq, rate=quote.rate, ref=quote.id))
                continue
            committed[rfq.get_leg] = committed.get(rfq.get_leg, 0) + domain.trade_receive(rfq.quantity, quote.rate)
        for rfq in market.rfqs:
            if rfq.taker == self.name or rfq.id in quoted or not _priced(market, rfq):
                continue
            spread = rng.randint(self.params.spread_min_bps, self.params.spread_max_bps)
            rate = maker_rate(*_pair(market, rfq), spread)
            receive = domain.trade_receive(rfq.quantity, rate)
            if rate <= 0 or rate > domain.MAX_RATE * domain.RATE_SCALE or receive <= 0:
                continue
            floor = leg_floor(market.initial.get(self.name, {}).get(rfq.get_leg, 0), self.params.floor_pct)
            free = held.get(rfq.get_leg, 0) - floor - committed.get(rfq.get_leg, 0)
            if receive > free:
                continue
            committed[rfq.get_leg] = committed.get(rfq.get_leg, 0) + receive
            intents.append(self._intent("quote", rfq, rate=rate, ref=rfq.id, ttl=self.params.quote_ttl))
        return intents

    def _intent(self, kind: str, rfq: RfqView, **more) -> Intent:
        return Intent(self.name, kind, rfq.give_leg, rfq.get_leg, rfq.quantity, **more)


@dataclass
class Taker:
    name: str
    params: Params
    refused: set[int] = field(default_factory=set)  # quotes an accept was refused for: not tried again

    def plan(self, market: Market, rng: random.Random, now: dt.datetime) -> list[Intent]:
        """Cancel its RFQs open too long; accept the best live quote on the others (or let it wait); with
        no RFQ open, maybe ask for a new one."""
        intents: list[Intent] = []
        own = [r for r in market.rfqs if r.taker == self.name]
        for rfq in own:
            if (now - rfq.created_at).total_seconds() >= self.params.stale_seconds:
                intents.append(Intent(self.name, "cancel", rfq.give_leg, rfq.get_leg, rfq.quantity, ref=rfq.id))
                continue
            offers = [q for q in market.quotes if q.rfq_id == rfq.id and q.id not in self.refused]
            best = best_quote(offers)
            if (
                best is not None
                and rng.randrange(100) < self.params.accept_chance_pct
                and _margin_lets(market, rfq, best)
            ):
                intents.append(
                    Intent(self.name, "accept", rfq.give_leg, rfq.get_leg, rfq.quantity, rate=best.rate, ref=best.id)
                )
        # One RFQ at a time: a new one only once the last is filled or cancelled (next step at the earliest).
        if own or rng.randrange(100) >= self.params.rfq_chance_pct:
            return intents
        held = market.holdings.get(self.name, {})
        priced = [leg for leg in market.legs if leg in market.prices]
        gives = [leg for leg in priced if shorting.may_give(market, self.name, leg) >= RFQ_STEP]
        if not gives or len(priced) < 2:
            return intents
        give = rng.choice(gives)
        room = {leg: fillable(market, give, leg) for leg in priced if leg != give}
        gets = [leg for leg, most in room.items() if most >= RFQ_STEP]
        if not gets:
            return intents
        get = rng.choice(gets)
        base = max(0, held.get(give, 0))
        if shorting.on(market) and rng.randrange(100) < self.params.short_chance_pct:
            base = shorting.may_give(market, self.name, give)  # beyond what it holds, within its limit
        quantity = rfq_size(base, rng.randint(self.params.size_min_pct, self.params.size_max_pct))
        quantity = min(quantity, room[get])
        if shorting.on(market):  # as much as the margin rule lets through at the makers' widest spread
            rate = maker_rate(market.prices[give], market.prices[get], self.params.spread_max_bps)
            while quantity > 0 and not shorting.passes(
                market, self.name, shorting.trade_change(give, get, quantity, domain.trade_receive(quantity, rate))
            ):
                quantity = rfq_size(quantity, 50)
        if quantity > 0:
            intents.append(Intent(self.name, "rfq", give, get, quantity))
        return intents


def fillable(market: Market, give: str, get: str) -> int:
    """The most of `give` (whole hundredths) an RFQ for `get` should ask to trade: what half of the
    best-stocked maker's `get` is worth at the implied rate (a maker keeps a floor and quotes others too);
    unbounded when the makers' holdings are not known."""
    if get not in market.deliverable:
        return domain.MAX_QTY_UNITS * domain.QTY_SCALE
    rate = maker_rate(market.prices[give], market.prices[get], 0)
    amount = market.deliverable[get] // 2 * domain.RATE_SCALE // rate if rate > 0 else 0
    return amount - amount % RFQ_STEP


def _margin_lets(market: Market, rfq: RfqView, quote: QuoteView) -> bool:
    """In a shorting session: whether the margin rule lets the trade through for the taker and (where the
    bots see its holdings) the maker, at the latest prices. Elsewhere: always (the services check stock)."""
    if not shorting.on(market):
        return True
    change = shorting.trade_change(
        rfq.give_leg, rfq.get_leg, rfq.quantity, domain.trade_receive(rfq.quantity, quote.rate)
    )
    if not shorting.passes(market, rfq.taker, change):
        return False
    maker = {leg: -units for leg, units in change.items()}
    return quote.maker not in market.holdings or shorting.passes(market, quote.maker, maker)


def _priced(market: Market, rfq: RfqView) -> bool:
    return rfq.give_leg in market.prices and rfq.get_leg in market.prices


def _pair(market: Market, rfq: RfqView) -> tuple[int, int]:
    marks = market.marks
    return marks[rfq.give_leg], marks[rfq.get_leg]
