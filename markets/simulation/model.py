"""The reference model of what the market must refuse: one small description of the rules, written apart
from the services, shared by the simulator (`manage.py simulate`) and the property test
(markets/tests/test_stateful.py). Each function gets the facts a caller keeps (its own book, or the
projection it read) and returns the codes of every refusal that applies: none means the command must
succeed; otherwise it must fail with one of them and write nothing.

It is a test oracle: if it and the services disagree, one of them is wrong, and the run says which
command, with which facts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markets import domain
from oracle import units

MAX_QUOTE_TTL = 24 * 3600  # the services' bound, restated: the model does not import what it checks
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

    def held(self, who: str, leg: str) -> int:
        return self.holdings[who][list(self.legs).index(leg)]


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


def rfq(m: Market, actor: str, give: object, get: object, quantity: object) -> set[str]:
    qty, refusals = _parsed(domain.parse_qty, quantity)
    refusals |= _who(m, actor) | _new_business(m)
    give_leg, get_leg = _leg(m, give), _leg(m, get)
    for name, leg in ((give, give_leg), (get, get_leg)):
        if isinstance(name, str) and not _LEG_CHARS.fullmatch(name):
            refusals.add("invalid_leg_name")  # a look-alike (Kelvin sign, no-break space) is not the leg it resembles
        elif leg is None:
            refusals.add("unknown_leg")
    if give_leg is not None and give_leg == get_leg:
        refusals.add("same_leg")
    role = m.roles.get(actor)
    if role == "organiser":
        refusals.add("forbidden")
    if role in HOLDERS and give_leg is not None and qty is not None and m.held(actor, give_leg) < qty:
        refusals.add("insufficient_inventory")
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
        elif m.roles.get(actor) == "maker" and m.held(actor, on.get_leg) < receive:
            refusals.add("insufficient_inventory")  # a maker may not quote what it could never deliver
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
    if m.held(q.rfq.taker, q.rfq.give_leg) < q.rfq.quantity or m.held(q.maker, q.rfq.get_leg) < receive:
        refusals.add("insufficient_inventory")
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
