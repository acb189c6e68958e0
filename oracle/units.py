"""Units, numbers and names shared by the oracle and the market. Pure: no Django, no I/O.

Fixed scales (documented in docs/ledger.md):
- quantities of a leg: integers of 10**-6 units (QTY_DP = 6), so 6.2 NVDA is 6_200_000;
- rates (units of the get leg per unit of the give leg): integers of 10**-8 (RATE_DP = 8);
- prices: integers of 10**-6 currency (PRICE_DP = 6);
- money (quantity x price): integers of 10**-12 currency (MONEY_DP = QTY_DP + PRICE_DP).

Numbers written as text are strict ASCII: digits with an optional decimal point and an optional exponent,
`[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?`, surrounded by nothing but spaces or tabs (a line break is not a
blank here). `1_0`, Arabic-Indic or full-width digits, `.5`, `5.`, `+5` and `1,5` are refused, never read as
numbers, and so are more decimals than a scale holds, even zeros (`0.0000010` is not a quantity). This is the one
reader of numbers: decimals (`read_decimal`, `parse_fixed`) and whole numbers (`read_whole`: a quote's
lifetime, a fixing window) for the services, the API, the forms, the CSV replay and the settle command. The
HTML forms alone also take a decimal comma (`read_form_decimal`: `1,5` is 1.5); nothing else does.

Leg names are ASCII too (`LEG_NAME`): a compatibility look-alike (the Kelvin sign, a long s, a ligature) or a
Unicode space is refused, never folded into the ASCII name it resembles (`leg_text_problem`).
"""

from __future__ import annotations

import re
import unicodedata
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
_BLANKS = " \t"  # what may stand around a number; a line break may not
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
    try:
        number = Decimal(match.group(2))
    except InvalidOperation:  # an exponent beyond Decimal's range (0e-99999999999999999999)
        raise InvalidNumber(what, "is out of range") from None
    if match.group(1) and number != 0:
        raise InvalidNumber(what, "must not be negative")
    return number


def decimal_places(number: Decimal) -> int:
    """How many decimals a number is written with, zeros and exponent counted: 0.0000010 and 10e-7 have 7."""
    exponent = number.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def parse_fixed(value: object, *, dp: int, what: str, max_value: int, allow_zero: bool = False) -> int:
    """A decimal (see `read_decimal`) as an integer of base units 10**-dp, exactly.

    Refuses zero (unless allowed), more than `dp` decimals as written (trailing zeros too: `0.0000010` is
    refused at 6) and values above `max_value` units.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > max_value:
        raise InvalidNumber(what, f"is too large (at most {max_value:,})")
    number = read_decimal(value, what)
    if number == 0 and not allow_zero:
        raise InvalidNumber(what, "must be greater than zero")
    if number > max_value:
        raise InvalidNumber(what, f"is too large (at most {max_value:,})")
    if decimal_places(number) > dp:
        raise InvalidNumber(what, f"has more than {dp} decimal places")
    try:
        scaled = number.scaleb(dp, context=EXACT)
    except DecimalException:
        scaled = None
    if scaled is None or scaled != scaled.to_integral_value(context=EXACT):
        raise InvalidNumber(what, f"has more than {dp} decimal places")
    if scaled == 0 and not allow_zero:
        raise InvalidNumber(what, "must be greater than zero")
    return int(scaled)


def read_whole(value: object, what: str, *, low: int, high: int, unit: str = "") -> int:
    """A whole number from `low` to `high` by the same reader (`read_decimal`): `60`, ` 60 `, `6e1` and a JSON
    60.0 are 60; Arabic-Indic `10`, `1_0`, `+5`, `0x10`, `2.5` and `60\\n` are refused (`int()` reads the first three)."""
    reason = f"must be a whole number {f'of {unit} ' if unit else ''}from {low:,} to {high:,}"
    if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
        raise InvalidNumber(what, reason)
    try:
        number = read_decimal(value, what)
    except InvalidNumber as exc:
        if exc.reason == "is required":
            raise
        raise InvalidNumber(what, f"{reason}, not {_shown(value)}") from None
    if not low <= number <= high or number != number.to_integral_value():
        raise InvalidNumber(what, reason)
    return int(number)


def _shown(value: object) -> str:
    return repr(value[:20]) if isinstance(value, str) else repr(value)[:20]


FORM_COMMA = re.compile(r"([0-9]+),([0-9]+)", re.ASCII)
# 1,000 or 12,500: a thousands separator to half the world, a decimal comma to the other half.
_GROUPED = re.compile(r"[1-9][0-9]{0,2},[0-9]{3}", re.ASCII)
FORM_RULE = "one decimal point or comma and no thousands separators, e.g. 1.5 or 1,5"


def read_form_decimal(text: object, what: str) -> object:
    """What a person typed in an HTML form, with a decimal comma read as a point (`1,5` is `1.5`; many
    phone keyboards offer nothing else), for `read_decimal` to read; other text is returned as it is.

    Refused here, where a comma makes the number ambiguous: a comma beside a point (`1,000.5`, `1.000,5`),
    two commas (`1,5,0`), and one comma before exactly three digits after 1-3 digits (`1,000`: a
    thousand or one?). The API, the CSV replay and the commands never call this: they refuse `1,5`.
    """
    if not isinstance(text, str) or "," not in text:
        return text
    bare = text.strip(_BLANKS)
    match = FORM_COMMA.fullmatch(bare)
    if match is None:
        raise InvalidNumber(what, f"must be a number, not {bare[:20]!r} ({FORM_RULE})")
    whole, part = match.groups()
    if _GROUPED.fullmatch(bare):
        raise InvalidNumber(
            what, f"is ambiguous as {bare!r}: write {whole}{part} (no thousands separators) or {whole}.{part}"
        )
    return f"{whole}.{part}"


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


_BLANK_RUNS = re.compile(r"[ \t]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e\t]*", re.ASCII)


def tidy_name(name: str) -> str:
    """A leg name as it is kept: surrounding spaces and tabs dropped, inner runs of them one space, case
    kept. Only ASCII blanks count as blanks: a no-break or em space stays, for `LEG_NAME` to refuse."""
    return _BLANK_RUNS.sub(" ", name).strip(" ")


def name_key(name: str) -> str:
    """What two names must differ in to be two legs: ASCII case and spacing do not count ("Gold 3m" is
    "GOLD  3M"). CSV columns and oracle symbols are matched to legs by this key. Nothing else is folded:
    the Kelvin sign stays itself (`str.casefold` would make it a k), so a look-alike never matches a leg."""
    return tidy_name(str(name)).translate(_ASCII_LOWER)


def leg_text_problem(name: object) -> str | None:
    """Why `name` cannot name a leg because of a character outside printable ASCII (a look-alike such as
    the Kelvin sign, a no-break space, a line break), named as Unicode names it; None when there is none.
    Such a character is what `str.casefold` and `str.split` would have folded into a leg's name."""
    if not isinstance(name, str):
        return "is not a name"
    if _PRINTABLE_ASCII.fullmatch(name):
        return None
    bad = next(c for c in name if not _PRINTABLE_ASCII.fullmatch(c))
    label = unicodedata.name(bad, "") or "a control character"
    return f"holds {bad!r} (U+{ord(bad):04X} {label}): leg names are ASCII ({LEG_RULE})"
