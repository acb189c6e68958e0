"""Bounded shorting, kept fully funded (exact integers and Fractions, no Django).

A session may let holdings go below zero, down to `short_limit` x q_k per participant and leg, with the
shorts of the whole pool in a leg capped by the same amount. A participant's worst case over the scenario
box (each price from S_k(1-m) to S_k(1+m) around the oracle's latest price) is exact without an optimiser,
because the payoff x.S is linear and separable:

    W_i = sum_k ( x+_ik . S_k(1-m)  -  x-_ik . S_k(1+m) )

The initial requirement is `initial_margin` x the gross short value at the latest prices
(IM_i = im . sum_k x-_ik S_k). A trade, quote, order or fill that would leave W_i < IM_i is refused, except
that a participant already under IM (reduce-only) may make a trade that raises W_i. W_i < 0 means the
participant is liquidated: its shorts are bought back (batch sessions) or deleveraged from the largest
holders of the leg at the oracle's price, paid with its long legs (`markets.domain.liquidation`). If a fixing falls so
far outside the box that some payout x_i.S is negative anyway, the deficit is taken pro rata from the
positive payouts (`liquidation.haircut`), so that every payout is >= 0 and they still sum to q.S exactly.

Units: quantities 10**-6, prices 10**-6, money 10**-12 (qty x price), as everywhere in the house.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from markets.domain import MONEY_SCALE, DomainError, money_str, qty_str

FRACTION_DP = 4  # fractions are written with at most 4 decimals: 0.2, 0.15, 0.0025
DEFAULT_BAND = "0.15"  # portfolio margin's valuation range for single stocks (FINRA 4210(g))
DEFAULT_INITIAL = "0.05"
STATUSES = ("ok", "reduce_only", "liquidated")


@dataclass(frozen=True)
class MarginSettings:
    """A session's shorting settings as SessionCreated records them (exact decimal text; "" = off)."""

    short_limit: str = ""
    margin_band: str = ""
    initial_margin: str = ""

    @property
    def on(self) -> bool:
        return bool(self.short_limit)

    @property
    def limit(self) -> Fraction:
        return _fraction(self.short_limit) if self.on else Fraction(0)

    @property
    def band(self) -> Fraction:
        return _fraction(self.margin_band) if self.on else Fraction(0)

    @property
    def initial(self) -> Fraction:
        return _fraction(self.initial_margin) if self.on else Fraction(0)

    def caps(self, q: Sequence[int]) -> list[int]:
        """The most any participant may be short of each leg, and the pool's gross short cap: floor(a.q_k)."""
        return list(_caps(self.short_limit, tuple(q)))

    def payload(self) -> dict:
        """What SessionCreated carries (nothing when shorting is off: the log reads as before)."""
        if not self.on:
            return {}
        return {
            "margin": {
                "short_limit": self.short_limit,
                "margin_band": self.margin_band,
                "initial_margin": self.initial_margin,
            }
        }


OFF = MarginSettings()


@functools.lru_cache(maxsize=256)
def _fraction(text: str) -> Fraction:
    """A setting's exact value (parsed once: the margin rule runs inside every command of the session)."""
    return Fraction(Decimal(text))


@functools.lru_cache(maxsize=256)
def _caps(short_limit: str, q: tuple[int, ...]) -> tuple[int, ...]:
    """floor(limit . q_k), kept per (limit, q): every command of a shorting session asks (Fractions are slow)."""
    limit = _fraction(short_limit) if short_limit else Fraction(0)
    return tuple(math.floor(limit * qk) for qk in q)


def _fraction_text(value: object, name: str, *, low: Fraction, high: Fraction, low_open: bool) -> str:
    text = str(value).strip().replace(",", ".") if value is not None else ""
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or "e" in text.lower():
        raise DomainError(f"{name} must be a decimal fraction such as 0.2, not {str(value)[:20]!r}", f"invalid_{name}")
    if number.as_tuple().exponent < -FRACTION_DP:  # type: ignore[operator]
        raise DomainError(f"{name} takes at most {FRACTION_DP} decimals", f"invalid_{name}")
    frac = Fraction(number)
    if (frac <= low if low_open else frac < low) or frac > high:
        side = "above" if low_open else "at least"
        most = Decimal(high.numerator) / Decimal(high.denominator)
        raise DomainError(f"{name} must be {side} {low} and at most {most:g}, not {text}", f"invalid_{name}")
    return format(number.normalize(), "f") if number != 0 else "0"


def _is_zero(value: object) -> bool:
    try:
        return Decimal(str(value).strip().replace(",", ".")) == 0
    except InvalidOperation:
        return False


def margin_settings(
    short_limit: object = None, margin_band: object = None, initial_margin: object = None
) -> MarginSettings:
    """A new session's shorting settings, each refused with its own code. No short_limit (or 0): off,
    and then neither of the others may be given."""
    given = [v for v in (margin_band, initial_margin) if v not in (None, "")]
    if short_limit in (None, "") or _is_zero(short_limit):
        if given:
            raise DomainError(
                "margin_band and initial_margin need short_limit (shorting is off)", "invalid_short_limit"
            )
        return OFF
    limit = _fraction_text(short_limit, "short_limit", low=Fraction(0), high=Fraction(1), low_open=True)
    band = _fraction_text(
        DEFAULT_BAND if margin_band in (None, "") else margin_band,
        "margin_band", low=Fraction(0), high=Fraction(9, 10), low_open=True,
    )  # fmt: skip
    initial = _fraction_text(
        DEFAULT_INITIAL if initial_margin in (None, "") else initial_margin,
        "initial_margin", low=Fraction(0), high=Fraction(1), low_open=False,
    )  # fmt: skip
    return MarginSettings(limit, band, initial)


def settings_of(d: Mapping) -> MarginSettings:
    """A SessionCreated payload's shorting settings (old logs and sessions without: off)."""
    m = d.get("margin")
    if not m:
        return OFF
    return MarginSettings(m["short_limit"], m["margin_band"], m["initial_margin"])


# ---------------------------------------------------------------- the worst case over the box


@dataclass(frozen=True)
class Assessment:
    """One participant's margin at one set of prices: W, the requirement, the status, and the leg whose
    short weighs most in the worst case (None without shorts)."""

    w: Fraction
    requirement: Fraction
    binding: int | None

    @property
    def excess(self) -> Fraction:
        return self.w - self.requirement

    @property
    def status(self) -> str:
        if self.w < 0:
            return "liquidated"
        return "reduce_only" if self.w < self.requirement else "ok"

    def figures(self, legs: Sequence[str]) -> dict:
        """W, the requirement and the binding leg as the API, the refusal and the monitor show them."""
        return {
            "W": money_text(self.w),
            "requirement": money_text(self.requirement),
            "binding_leg": legs[self.binding] if self.binding is not None else None,
        }


def money_said(value: Fraction) -> str:
    """Money as a refusal says it to a person: 2 decimals, rounded down, thousands grouped (the exact
    figures travel beside it, in `detail`)."""
    cents = math.floor(value * 100 / MONEY_SCALE)
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def money_text(value: Fraction) -> str:
    """Money (10**-12 base units), exact where it is whole, else rounded down to the base unit."""
    return money_str(math.floor(value))


def has_shorts(x: Sequence[int]) -> bool:
    return any(v < 0 for v in x)


def assess(
    x: Sequence[int], prices: Sequence[int | None], settings: MarginSettings, legs: Sequence[str] = ()
) -> Assessment:
    """W and IM of holding row `x` at `prices` (None where the oracle has no price yet). Without shorts,
    W >= 0 = IM whatever the prices (nothing is needed); with them, every leg held needs a price."""
    if not has_shorts(x):
        return Assessment(Fraction(0) if not any(x) else _w(x, prices, settings.band, need=False), Fraction(0), None)
    return Assessment(
        _w(x, prices, settings.band, legs=legs),
        settings.initial * sum(-v * prices[k] for k, v in enumerate(x) if v < 0),  # type: ignore[operator]
        max((k for k, v in enumerate(x) if v < 0), key=lambda k: (-x[k] * prices[k], -k)),  # type: ignore[operator]
    )


def _w(x: Sequence[int], prices: Sequence[int | None], band: Fraction, *, need: bool = True, legs=()) -> Fraction:
    # In integers over the band's denominator d (m = n/d: longs at (d-n)/d, shorts at (d+n)/d), one
    # Fraction at the end: the same exact value, without a Fraction per leg.
    low, high, d = band.denominator - band.numerator, band.denominator + band.numerator, band.denominator
    total = 0
    for k, v in enumerate(x):
        if v == 0:
            continue
        price = prices[k]
        if price is None:
            if not need:
                return Fraction(0)  # a long-only row: W >= 0 at any price, and that is all it needs
            name = legs[k] if legs else f"leg #{k}"
            raise DomainError(
                f"No oracle price for {name} yet: a position with shorts needs every leg it holds priced",
                "no_price",
                "conflict",
            )
        total += v * price * (low if v > 0 else high)
    return Fraction(total, d)


def check_move(
    who: str,
    before: Sequence[int],
    after: Sequence[int],
    prices: Sequence[int | None],
    settings: MarginSettings,
    legs: Sequence[str],
) -> Assessment:
    """The margin rule for one participant's side of a trade, quote, order or fill: after it, W >= IM; or,
    for a participant already under IM (reduce-only), W rises. Refused with 409 `margin`, its figures."""
    now = assess(after, prices, settings, legs)
    if now.excess >= 0:
        return now
    was = assess(before, prices, settings, legs)
    if was.excess < 0 and now.w > was.w:
        return now  # reduce-only: a trade that raises W is let through
    figures = now.figures(legs)
    if was.excess < 0:
        message = (
            f"Margin: {who} {'are' if who == 'you' else 'is'} reduce-only (W {money_said(was.w)} under the "
            f"requirement {money_said(was.requirement)}) and this would not raise W (it would be {money_said(now.w)})"
        )
    else:
        message = (
            f"Margin: this would leave {who} with W {money_said(now.w)} below the requirement "
            f"{money_said(now.requirement)}"
            f" (the binding leg is {figures['binding_leg']}, short {qty_str(-after[now.binding])})"  # type: ignore[index]
        )
    error = DomainError(message, "margin", "conflict")
    error.detail = figures | {"who": who}  # type: ignore[attr-defined]
    raise error


def check_bounds(x: Sequence[int], caps: Sequence[int], legs: Sequence[str], who: str = "you") -> None:
    """No holding below minus its short limit (0 where shorting is off)."""
    for k, v in enumerate(x):
        if v < -caps[k]:
            if caps[k] == 0:
                raise DomainError(
                    f"Insufficient inventory: {who} would hold {qty_str(v)} {legs[k]} (this session allows no shorts)",
                    "insufficient_inventory",
                    "conflict",
                )
            raise DomainError(
                f"Short limit: {who} would be short {qty_str(-v)} {legs[k]}, the most allowed is {qty_str(caps[k])}",
                "short_limit",
                "conflict",
            )


def check_gross(short_totals: Sequence[int], caps: Sequence[int], legs: Sequence[str]) -> None:
    """The pool's gross short per leg within its cap."""
    for k, total in enumerate(short_totals):
        if total > caps[k]:
            raise DomainError(
                f"Short limit: the pool would be short {qty_str(total)} {legs[k]} in all, the cap is {qty_str(caps[k])}",
                "short_limit",
                "conflict",
            )
