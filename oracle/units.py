"""Units, numbers and names shared by the oracle and the market. Pure: no Django, no I/O.

Fixed scales (documented in the README):
- quantities of a leg: integers of 10**-6 units (QTY_DP = 6), so 6.2 NVDA is 6_200_000;
- rates (units of the get leg per unit of the give leg): integers of 10**-8 (RATE_DP = 8);
- prices: integers of 10**-6 currency (PRICE_DP = 6);
- money (quantity x price): integers of 10**-12 currency (MONEY_DP = QTY_DP + PRICE_DP).

Numbers written as text are strict ASCII: digits with an optional decimal point and an optional
exponent, `[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?`, surrounded by nothing but spaces or tabs. `1_0`,
Arabic-Indic or full-width digits, `.5`, `5.`, `+5` and `1,5` are refused, never read as numbers. This is the one reader of
decimal text: the services, the API, the forms, the CSV replay and the settle command all use it.
"""

from __future__ import annotations

import re
from decimal import (
    Clamped,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
)

QTY_DP = 6
RATE_DP = 8
PRICE_DP = 6
MONEY_DP = QTY_DP + PRICE_DP
QTY_SCALE = 10**QTY_DP
RATE_SCALE = 10**RATE_DP
PRICE_SCALE = 10**PRICE_DP
MONEY_SCALE = 10**MONEY_DP

# Bounds keep every stored integer inside a signed 64-bit column with room to spare.
MAX_QTY_UNITS = 10**9  # per leg, in units (so 10**15 base units)
MAX_RATE = 10**6
MAX_PRICE = 10**7
MAX_NUMBER_TEXT = 64

# Decimal arithmetic wide enough that scaling never rounds (the default context keeps 28 digits).
# Every inexact step raises instead of rounding quietly (a tiny 1e-999999999 must not become 0).
EXACT = Context(
    prec=120,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow, Underflow, Subnormal, Inexact, Rounded, Clamped],
)

NUMBER_TEXT = re.compile(r"(-?)([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)", re.ASCII)
_NOT_FINITE = re.compile(r"[+-]?(?:s?nan|inf|infinity)", re.ASCII | re.IGNORECASE)
_BLANKS = " \t\r\n"
NUMBER_RULE = "digits 0-9 with an optional decimal point, e.g. 2.5"


class InvalidNumber(ValueError):
    """A number that cannot be used: `message` ("Quantity must be ...") says why in words a person can act
    on; `reason` is the same without the subject ("must be ..."), for edges that name the field."""

    def __init__(self, what: str, reason: str) -> None:
        self.message = f"{what} {reason}"
        self.reason = reason
        super().__init__(self.message)


def read_decimal(value: object, what: str = "The number") -> Decimal:
    """An exact Decimal from text, an int or a Decimal (a float is read by its shortest repr).

    Text must follow NUMBER_TEXT; a sign is read only to say "must not be negative". Booleans, None and
    anything else are refused. The value is not range-checked here (see `parse_fixed`).
    """
    if isinstance(value, bool) or value is None:
        raise InvalidNumber(what, "must be a number")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, int):
        if value < 0:
            raise InvalidNumber(what, "must not be negative")
        if value.bit_length() > 256:  # before str(): a huge int would not even convert
            raise InvalidNumber(what, "is too large")
        return Decimal(value)
    if isinstance(value, Decimal):
        if value.is_nan() or value.is_infinite():
            raise InvalidNumber(what, "must be a finite number")
        if value.is_signed() and value != 0:
            raise InvalidNumber(what, "must not be negative")
        return value
    if not isinstance(value, str):
        raise InvalidNumber(what, "must be a number")
    text = value.strip(_BLANKS)
    if not text:
        raise InvalidNumber(what, "is required")
    if len(text) > MAX_NUMBER_TEXT:
        raise InvalidNumber(what, "is too long to be a number")
    if _NOT_FINITE.fullmatch(text):
        raise InvalidNumber(what, "must be a finite number")
    match = NUMBER_TEXT.fullmatch(text)
    if match is None:
        raise InvalidNumber(what, f"must be a number, not {text[:20]!r} ({NUMBER_RULE})")
    number = Decimal(match.group(2))
    if match.group(1) and number != 0:
        raise InvalidNumber(what, "must not be negative")
    return number


def parse_fixed(value: object, *, dp: int, what: str, max_value: int, allow_zero: bool = False) -> int:
    """A decimal (see `read_decimal`) as an integer of base units 10**-dp, exactly.

    Refuses zero (unless allowed), more than `dp` decimals and values above `max_value` units.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > max_value:
        raise InvalidNumber(what, f"is too large (at most {max_value:,})")
    number = read_decimal(value, what)
    if number == 0 and not allow_zero:
        raise InvalidNumber(what, "must be greater than zero")
    if number > max_value:
        raise InvalidNumber(what, f"is too large (at most {max_value:,})")
    try:
        scaled = number.scaleb(dp, context=EXACT)
    except DecimalException:
        scaled = None
    if scaled is None or scaled != scaled.to_integral_value(context=EXACT):
        raise InvalidNumber(what, f"has more than {dp} decimal places")
    if scaled == 0 and not allow_zero:
        raise InvalidNumber(what, "must be greater than zero")
    return int(scaled)


def parse_price(value: object, what: str = "Price") -> int:
    return parse_fixed(value, dp=PRICE_DP, what=what, max_value=MAX_PRICE)


def to_decimal(base: int, dp: int) -> Decimal:
    """Exact Decimal of a base-unit integer, with exactly `dp` places (whatever its size)."""
    return Decimal(base).scaleb(-dp, context=EXACT).quantize(Decimal(1).scaleb(-dp), context=EXACT)


def fmt(base: int, dp: int) -> str:
    """Base units as fixed-point text with all `dp` places, never an exponent (str(Decimal) writes a
    zero payout as 0E-12 and a rate of 10**-8 as 1E-8)."""
    return format(to_decimal(base, dp), "f")


def short(base: int, dp: int) -> str:
    """The shortest exact text of base units, as a person writes it: 12.5, 3, 0.000001."""
    text = fmt(base, dp)
    return text.rstrip("0").rstrip(".") if "." in text else text


# ---------------------------------------------------------------- names of legs

MAX_LEG_NAME = 24
LEG_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._/-]*[A-Za-z0-9._/-])?", re.ASCII)
LEG_RULE = f"letters, digits, spaces and . _ - /, starting with a letter or digit, up to {MAX_LEG_NAME} characters"


def tidy_name(name: str) -> str:
    """A leg name as it is kept: surrounding blanks dropped, inner runs of blanks one space, case kept."""
    return " ".join(name.split())


def name_key(name: str) -> str:
    """What two names must differ in to be two legs: case and spacing do not count ("Gold 3m" is
    "GOLD  3M"). CSV columns and oracle symbols are matched to legs by this key."""
    return " ".join(str(name).split()).casefold()
