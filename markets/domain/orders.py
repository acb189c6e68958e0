"""The rules of batch sessions and their limit orders that need no database (exact integers, no Django):
a session's batch settings, an order's size, limit and lifetime, what it may reserve, when the next cut
falls, and what a cut leaves of each order. The clearing itself is `markets.domain.batch`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from markets.domain import DomainError, parse_qty, qty_str
from oracle import units

MECHANISMS = ("rfq", "batch", "both")


def by_rfq(mechanism: str) -> bool:
    """Whether a session of this mechanism trades by RFQ (the session, the bots and the model ask)."""
    return mechanism in ("rfq", "both")


def by_batch(mechanism: str) -> bool:
    """Whether a session of this mechanism trades by batch auction."""
    return mechanism in ("batch", "both")


BATCH_SECONDS = (1, 3600)
DEFAULT_BATCH_SECONDS = 10
DEFAULT_BAND = "0.10"
BAND_DP = 4  # the band is written with at most 4 decimals: 0.1, 0.05, 0.0025
MAX_BAND = Fraction(1, 2)
DEFAULT_MAX_ORDERS = 20
MAX_ORDERS = (1, 1000)
DEFAULT_MIN_ORDER = 10_000  # 0.01 of a unit
MAX_GOOD_FOR = 1000


def _conflict(message: str, code: str) -> DomainError:
    return DomainError(message, code, "conflict")


@dataclass(frozen=True)
class BatchSettings:
    """A session's mechanism and, when it runs batch auctions, their settings (as SessionCreated records)."""

    mechanism: str
    seconds: int | None = None
    band: str = ""  # exact decimal text, e.g. "0.10"
    max_orders: int | None = None
    min_order: int | None = None  # base units

    @property
    def batch(self) -> bool:
        return self.mechanism in ("batch", "both")

    def payload(self) -> dict:
        """What SessionCreated carries (nothing for an RFQ-only session: its log reads as before)."""
        if not self.batch:
            return {"mechanism": self.mechanism}
        return {
            "mechanism": self.mechanism,
            "batch": {
                "seconds": self.seconds,
                "band": self.band,
                "max_orders": self.max_orders,
                "min_order": self.min_order,
            },
        }


def band_fraction(text: str) -> Fraction:
    return Fraction(Decimal(text))


def batch_settings(
    mechanism: object = "rfq",
    seconds: object = None,
    band: object = None,
    max_orders: object = None,
    min_order: object = None,
) -> BatchSettings:
    """The settings of a new session, each refused with its own code; defaults where not given."""
    if mechanism not in MECHANISMS:
        raise DomainError(f"mechanism must be one of {', '.join(MECHANISMS)}", "invalid_mechanism")
    if mechanism == "rfq":
        if any(v not in (None, "") for v in (seconds, band, max_orders, min_order)):
            raise DomainError("Batch settings need mechanism batch or both", "invalid_mechanism")
        return BatchSettings("rfq")
    low, high = BATCH_SECONDS
    try:
        secs = (
            DEFAULT_BATCH_SECONDS
            if seconds in (None, "")
            else units.read_whole(seconds, "batch_seconds", low=low, high=high, unit="seconds")
        )
        limit = (
            DEFAULT_MAX_ORDERS
            if max_orders in (None, "")
            else units.read_whole(max_orders, "max_orders", low=MAX_ORDERS[0], high=MAX_ORDERS[1])
        )
    except units.InvalidNumber as exc:
        raise DomainError(exc.message, "invalid_batch_settings") from None
    band_text = DEFAULT_BAND if band in (None, "") else band
    try:
        exact = units.read_decimal(band_text, "batch_band")
    except units.InvalidNumber as exc:
        raise DomainError(exc.message, "invalid_batch_band") from None
    if exact.as_tuple().exponent < -BAND_DP or not 0 < exact <= MAX_BAND:
        raise DomainError(
            f"batch_band must be more than 0 and at most {MAX_BAND.numerator}/{MAX_BAND.denominator}, with at most "
            f"{BAND_DP} decimals (0.10: each clearing price within 10% of the oracle's)",
            "invalid_batch_band",
        )
    smallest = DEFAULT_MIN_ORDER if min_order in (None, "") else parse_qty(min_order, "min_order")
    return BatchSettings(mechanism, secs, format(exact, "f"), limit, smallest)


def settings_of(payload: dict) -> BatchSettings:
    """A SessionCreated payload's settings (a log written before batch auctions: RFQ only)."""
    mechanism = payload.get("mechanism", "rfq")
    batch = payload.get("batch") or {}
    if mechanism == "rfq":
        return BatchSettings("rfq")
    return BatchSettings(mechanism, batch["seconds"], batch["band"], batch["max_orders"], batch["min_order"])


def lifetime(good_for: object = None, gtc: object = False) -> int | None:
    """How many batches an order lives (1 unless it says `good_for` N); None: good till cancelled."""
    if gtc not in (True, False, None):
        raise DomainError("gtc is true or false", "invalid_lifetime")
    if gtc and good_for not in (None, ""):
        raise DomainError("Say good_for N batches or gtc, not both", "invalid_lifetime")
    if gtc:
        return None
    if good_for in (None, ""):
        return 1
    try:
        return units.read_whole(good_for, "good_for", low=1, high=MAX_GOOD_FOR, unit="batches")
    except units.InvalidNumber as exc:
        raise DomainError(exc.message, "invalid_lifetime") from None


def check_order(
    *,
    quantity: int,
    held: int,
    reserved: int,
    min_order: int,
    resting: int,
    max_orders: int,
    leg: str,
    short_room: int = 0,
) -> None:
    """An order may rest: large enough, within the participant's resting orders, and no more than what
    is available of its give leg (held - reserved by the orders already resting, + the short limit)."""
    if quantity < min_order:
        raise DomainError(
            f"An order gives at least {qty_str(min_order)} {leg} here, not {qty_str(quantity)}", "order_too_small"
        )
    if resting >= max_orders:
        raise _conflict(
            f"You have {resting} orders resting, the most this session allows: cancel one first", "too_many_orders"
        )
    available = held - reserved
    if short_room and quantity > available + short_room:
        raise _conflict(
            f"Short limit: you hold {qty_str(held)} {leg}, {qty_str(reserved)} reserved by your resting orders, "
            f"and may go short {qty_str(short_room)} at most, so {qty_str(max(available + short_room, 0))} "
            f"may be offered, not {qty_str(quantity)}",
            "short_limit",
        )
    if quantity > available + short_room:
        raise _conflict(
            f"Not enough available: you hold {qty_str(held)} {leg}, {qty_str(reserved)} reserved by your resting "
            f"orders, so {qty_str(max(available, 0))} available, not {qty_str(quantity)}",
            "insufficient_available",
        )


def next_cut(last: dt.datetime, seconds: int, after: dt.datetime) -> dt.datetime:
    """The first instant on the grid `last + k * seconds` (k >= 1) strictly after `after`: a cut that ran
    late (nothing ran for a while) is followed by the next one on the grid, not by a burst of catch-ups."""
    step = dt.timedelta(seconds=seconds)
    gone = max(0, (after - last) // step) if after > last else 0
    cut = last + step * (gone + 1)
    while cut <= after:
        cut += step
    return cut


def after_cut(rest: int, batches_left: int | None) -> tuple[str, int | None]:
    """What a cut leaves of an order that was in its book: (status, batches left). Filled when nothing
    rests; expired when its last batch passed with a rest; resting otherwise (one batch fewer to live)."""
    if rest == 0:
        return "filled", batches_left
    if batches_left is None:
        return "resting", None
    if batches_left <= 1:
        return "expired", 0
    return "resting", batches_left - 1
