"""Batch auctions (issue #30): at each cut every resting limit order clears together, at one price per leg.

The API the services and `verify_ledger` both call (pure: no Django, no clock, no I/O, no floats in any
result; the same book gives the same result, byte for byte):

    book = make_book(legs, reference, band, orders)     # validated; orders sorted by id
    result = clear(book)                                # Clearing | NoClearing
    problems = check(book, result)                      # [] when the record is feasible
    payload = result_to_dict(result)                    # plain ints and strings; canonical_json() hashes it
    problems = verify(book, payload)                    # verify_ledger: check, then re-clear and compare

Scales as everywhere (`oracle.units`): quantities in 10**-6 units, limits in 10**-8 units of the get leg per
unit of the give leg, prices in 10**-6 currency, volume in 10**-12 money. The rule, its objective, the
search, the rounding and what is exact or heuristic: docs/batch-auctions.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from markets.domain import MAX_ID, DomainError
from markets.domain.batch_book import Point, Prepared, prepare
from markets.domain.batch_flow import allocate, settle_flows
from markets.domain.batch_milp import SolverFailed
from markets.domain.batch_multi import Multi
from markets.domain.batch_search import TwoLeg, components, restrict
from markets.domain.rounding import Leg, RoundingFailed, integerize
from oracle.units import MAX_PRICE, MAX_QTY_UNITS, MAX_RATE, PRICE_SCALE, QTY_SCALE, RATE_SCALE

BAND = Fraction(1, 10)
MAX_LEGS = 32


@dataclass(frozen=True)
class Order:
    """A resting limit order: give up to `quantity` of leg `give` for leg `get` at `limit` or better."""

    id: int
    owner: int
    give: int
    get: int
    quantity: int
    limit: int


@dataclass(frozen=True)
class Book:
    """What a cut clears: the legs, the oracle's prices at the cut, the band and the resting orders."""

    legs: tuple[str, ...]
    reference: tuple[int, ...]
    band: Fraction
    orders: tuple[Order, ...]


@dataclass(frozen=True)
class Fill:
    order: int
    owner: int
    give: int
    get: int
    given: int
    received: int
    rest: int


@dataclass(frozen=True)
class Clearing:
    """One price per leg; the orders that traded (the others rest as they were); the volume traded
    (sum over legs of the reference price times the units that changed hands, 10**-12); how it was found."""

    prices: tuple[int, ...]
    fills: tuple[Fill, ...]
    volume: int
    method: str


@dataclass(frozen=True)
class NoClearing:
    """Nothing traded: every order rests as it was. `reason` is a stable code, `message` says why."""

    reason: str
    message: str


Result = Clearing | NoClearing


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DomainError(f"{what} must be an integer from {low} to {high}", "invalid_book")
    return value


def make_book(legs: Sequence[str], reference: Sequence[int], band: Fraction, orders: Iterable[Order]) -> Book:
    """A validated book: 2..32 legs, a positive reference price per leg, 0 < band < 1, orders with distinct
    ids on two different legs of the book, positive quantities and limits. Orders are kept sorted by id."""
    legs = tuple(legs)
    if not 2 <= len(legs) <= MAX_LEGS or not all(isinstance(leg, str) for leg in legs):
        raise DomainError(f"A batch needs 2 to {MAX_LEGS} named legs", "invalid_book")
    reference = tuple(_int(p, "A reference price", 1, MAX_PRICE * PRICE_SCALE) for p in reference)
    if len(reference) != len(legs):
        raise DomainError("One reference price per leg is needed", "invalid_book")
    if not isinstance(band, Fraction) or not 0 < band < 1:
        raise DomainError("The band must be a fraction strictly between 0 and 1", "invalid_book")
    if any(lo < 1 for lo in prepare(len(legs), reference, band, ()).lo):
        raise DomainError("The band reaches a price of zero for some leg", "invalid_book")
    checked = []
    for o in orders:
        _int(o.id, "An order id", 1, MAX_ID)
        _int(o.owner, "An owner id", 1, MAX_ID)
        _int(o.give, "A give leg", 0, len(legs) - 1)
        _int(o.get, "A get leg", 0, len(legs) - 1)
        _int(o.quantity, "A quantity", 1, MAX_QTY_UNITS * QTY_SCALE)
        _int(o.limit, "A limit rate", 1, MAX_RATE * RATE_SCALE)
        if o.give == o.get:
            raise DomainError(f"Order {o.id} gives and gets the same leg", "invalid_book")
        checked.append(o)
    checked.sort(key=lambda o: o.id)
    if len({o.id for o in checked}) != len(checked):
        raise DomainError("Order ids must be distinct", "invalid_book")
    return Book(legs, reference, band, tuple(checked))


# ---------------------------------------------------------------- clearing


def _prepared(book: Book) -> Prepared:
    return prepare(len(book.legs), book.reference, book.band, book.orders)


def search(prep: Prepared, proposals=None) -> tuple[tuple[int, ...], str] | None:
    """The clearing prices (a leg no order touches keeps its reference price) and the method used, or
    None when nothing crosses. Components of the book are independent and searched one by one.

    The program behind `proposals` only proposes starts: when HiGHS fails on it, the search goes on without
    them, so a solver failure never hides a trade the other starts find. Only when nothing trades at all is
    the failure raised (`SolverFailed`): "nothing crosses" is not claimed on a search that lost a start."""
    prices = list(prep.reference)
    methods = set()
    traded = False
    failed = None
    for legs in components(prep):
        sub = restrict(prep, legs)
        if len(legs) == 2:
            a, b = legs
            found = TwoLeg(sub, a, b).solve() if (a, b) in sub.pairs and (b, a) in sub.pairs else None
            methods.add("two-leg")
        else:
            try:
                offered = proposals(sub, legs) if proposals else []
            except SolverFailed as exc:
                offered, failed = [], exc
            found = Multi(sub, legs).solve(offered)
            methods.add("multi-leg")
        if found is not None and found.volume > 0:
            traded = True
            for k in legs:
                prices[k] = found.prices[k]
    if not traded and failed is not None:
        raise failed
    return (tuple(prices), "+".join(sorted(methods))) if traded else None


def clear(book: Book) -> Result:
    """Clear `book` (see the module docstring). Never half a batch: any failure is a NoClearing."""
    if not book.orders:
        return NoClearing("empty_book", "No order rests at the cut")
    prep = _prepared(book)
    from markets.domain import batch_milp

    try:
        found = search(prep, batch_milp.propose)
    except batch_milp.SolverFailed as exc:
        return NoClearing("solver_failed", f"The price search failed: {exc}")
    if found is None:
        return NoClearing("nothing_crosses", "No orders cross within the band")
    prices, method = found
    settled: Point = settle_flows(prep, prices)
    exact = allocate(prep, prices, settled.flows)
    by_id = {o.id: o for o in book.orders}
    legs = [Leg(i, by_id[i].give, by_id[i].get, by_id[i].limit, y) for i, y in sorted(exact.items()) if y > 0]
    try:
        whole = integerize(legs, prices, len(book.legs))
    except RoundingFailed as exc:
        return NoClearing("rounding_failed", str(exc))
    fills = tuple(
        Fill(i, by_id[i].owner, by_id[i].give, by_id[i].get, g, r, by_id[i].quantity - g)
        for i, (g, r) in sorted(whole.items())
        if g > 0
    )
    if not fills:
        return NoClearing("too_small", "Orders cross, but no fill survives rounding to whole base units")
    volume = sum(book.reference[f.give] * f.given for f in fills)
    clearing = Clearing(prices, fills, volume, method)
    from markets.domain.batch_check import check

    problems = check(book, clearing)
    if problems:
        return NoClearing("check_failed", "; ".join(problems[:5]))
    return clearing


def check(book: Book, result: Result, holdings=None) -> list[str]:
    """The exact feasibility check the service runs before committing and verify_ledger runs on the
    record (see `batch_check`)."""
    from markets.domain.batch_check import check as _check

    return _check(book, result, holdings)


def verify(book: Book, recorded: dict) -> list[str]:
    """What `verify_ledger` runs on a recorded batch (its canonical dict): the exact check of the record,
    then a re-clear of the same book compared field by field. Each difference names its leg or order."""
    try:
        result = result_from_dict(recorded)
    except (KeyError, TypeError, ValueError) as exc:
        return [f"the record is not a batch result: {exc!r}"]
    problems = check(book, result)
    again = result_to_dict(clear(book))
    if recorded.get("result") != again["result"]:
        return [*problems, f"recorded {recorded.get('result')}, the algorithm gives {again['result']}"]
    if again["result"] == "not_cleared":
        if recorded.get("reason") != again["reason"]:
            problems.append(f"recorded reason {recorded.get('reason')}, the algorithm gives {again['reason']}")
        return problems
    for k, (mine, theirs) in enumerate(zip(recorded["prices"], again["prices"], strict=False)):
        if mine != theirs:
            problems.append(f"price of {book.legs[k]}: recorded {mine}, the algorithm gives {theirs}")
    fills = {f["order"]: f for f in recorded["fills"]}
    expected = {f["order"]: f for f in again["fills"]}
    for order in sorted(fills.keys() | expected.keys()):
        mine, theirs = fills.get(order), expected.get(order)
        if mine != theirs:
            show = lambda f: "no fill" if f is None else f"gives {f['given']}, receives {f['received']}"  # noqa: E731
            problems.append(f"fill of order {order}: recorded {show(mine)}, the algorithm gives {show(theirs)}")
    for key in ("volume", "method"):
        if recorded.get(key) != again[key]:
            problems.append(f"{key}: recorded {recorded.get(key)}, the algorithm gives {again[key]}")
    return problems


# ---------------------------------------------------------------- canonical form


def canonical_json(payload: dict) -> str:
    """The serialisation the ledger hashes (`ledger.chain.canonical_json`: sorted keys, compact, ASCII),
    written again here because the rules import nothing that imports Django; a test holds the two equal."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def book_to_dict(book: Book) -> dict:
    return {
        "legs": list(book.legs),
        "reference": list(book.reference),
        "band": f"{book.band.numerator}/{book.band.denominator}",
        "orders": [
            {"id": o.id, "owner": o.owner, "give": o.give, "get": o.get, "quantity": o.quantity, "limit": o.limit}
            for o in book.orders
        ],
    }


def book_from_dict(data: dict) -> Book:
    num, den = (int(part) for part in str(data["band"]).split("/"))
    orders = [Order(o["id"], o["owner"], o["give"], o["get"], o["quantity"], o["limit"]) for o in data["orders"]]
    return make_book(data["legs"], data["reference"], Fraction(num, den), orders)


def result_to_dict(result: Result) -> dict:
    if isinstance(result, NoClearing):
        return {"result": "not_cleared", "reason": result.reason, "message": result.message}
    return {
        "result": "cleared",
        "method": result.method,
        "prices": list(result.prices),
        "volume": result.volume,
        "fills": [
            {
                "order": f.order,
                "owner": f.owner,
                "give": f.give,
                "get": f.get,
                "given": f.given,
                "received": f.received,
                "rest": f.rest,
            }
            for f in result.fills
        ],
    }


def result_from_dict(data: dict) -> Result:
    if data["result"] == "not_cleared":
        return NoClearing(data["reason"], data["message"])
    fills = tuple(
        Fill(f["order"], f["owner"], f["give"], f["get"], f["given"], f["received"], f["rest"]) for f in data["fills"]
    )
    return Clearing(tuple(data["prices"]), fills, data["volume"], data["method"])
