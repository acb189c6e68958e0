"""Request and response shapes of the JSON API (pydantic, via django-ninja).

Quantities, rates and prices travel as exact decimal strings in responses ("6.200000"). On input a
number may be a JSON number or a string: the API's JSON parser reads JSON numbers as Decimal, never
float, and `ExactNumber` keeps them exact, so 0.1 arrives as Decimal("0.1"). The domain then checks
scale and bounds (markets.domain.parse_fixed) and gives the error message.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from markets import domain
from oracle import units

# No valid quantity, rate or price has more than 18 significant digits (10**9 units at 10**-8), so
# anything with more than this many is refused here, before the domain's 28-digit decimal context
# could round it (see the note in the API's report on markets.domain.parse_fixed).
MAX_SIGNIFICANT_DIGITS = 24


def _number_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_number", message)


def _check_magnitude(number: Decimal, shown: object) -> Decimal:
    if not number.is_finite():
        raise _number_error("must be a finite number")
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:  # trailing zeros say nothing
        significant -= 1
        exponent += 1
    if significant > MAX_SIGNIFICANT_DIGITS or not -MAX_SIGNIFICANT_DIGITS <= exponent <= MAX_SIGNIFICANT_DIGITS:
        raise _number_error(f"{str(shown)[:24]} has too many digits for a quantity, rate or price")
    return number


def exact_number(value: Any) -> Decimal:
    """A JSON number (already a Decimal or int) or a decimal string of ASCII digits (`oracle.units`, the
    one reader of decimal text); never bool, null or float."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        raise _number_error("is far too large")
    try:
        number = units.read_decimal(value, "It")
    except units.InvalidNumber as exc:
        raise _number_error(exc.reason) from None
    return _check_magnitude(number, value)


def whole_number(value: Any) -> int:
    """A whole number given as a JSON number or a string of digits (bounded before conversion)."""
    number = exact_number(value)
    if number != number.to_integral_value():
        raise _number_error("must be a whole number")
    return int(number)


def _iso_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_time", "must be an ISO 8601 date and time with a timezone")
    return value


def _to_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError("invalid_time", "needs a timezone, e.g. 2026-01-31T16:00:00Z")
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise PydanticCustomError("invalid_time", "is out of range") from None


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("invalid_text", "must not contain NUL characters")
    return value


def _setting(value: Any) -> Any:
    """A batch or shorting setting as given (a JSON number, read as Decimal, or a string): the service reads
    it exactly and refuses it with its own code (`invalid_batch_settings`, `invalid_batch_band`,
    `invalid_lifetime`, `invalid_short_limit`, `invalid_margin_band`, `invalid_initial_margin`)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise _number_error("must be a number, or a decimal string")
    if isinstance(value, str):
        _no_nul(value)
        if len(value) > 40:
            raise _number_error("is far too long for a number")
    return value


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise PydanticCustomError("invalid_lifetime", "must be true or false")
    return value


# Text that every database can store (PostgreSQL refuses NUL characters in strings).
Text = Annotated[str, AfterValidator(_no_nul)]

NUMBER_PATTERN = r"^[ \t]*[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?[ \t]*$"
ExactNumber = Annotated[
    Decimal,
    PlainValidator(exact_number),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": NUMBER_PATTERN}],
            "description": "A decimal as a JSON number or a string of ASCII digits with an optional decimal point "
            "and exponent (2.5, 10, 1e-3); kept exact, never a float",
            "examples": ["6.2", 10],
        }
    ),
]

Setting = Annotated[
    Any,
    PlainValidator(_setting),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": NUMBER_PATTERN}],
            "description": 'A number, or a decimal string: read exactly ("0.10" stays 0.10)',
        }
    ),
]
StrictBool = Annotated[bool, PlainValidator(_strict_bool), WithJsonSchema({"type": "boolean"})]


def _strict_id(value: Any) -> int:
    number = domain.parse_id(value)
    if number is None:
        raise PydanticCustomError(
            "invalid_id", "must be a positive whole number written in digits only (no sign, spaces or leading zeros)"
        )
    return number


# Ids in paths are written one way: `/quotes/%201/accept`, `/quotes/1.0/accept` and `/quotes/+1/accept` name
# nothing (422 invalid_id), where a lax integer would have read all three as quote 1.
PathId = Annotated[
    int,
    PlainValidator(_strict_id),
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 1,
            "maximum": domain.MAX_ID,
            "description": "A row id in digits only: no sign, spaces, decimal point or leading zeros",
        }
    ),
]
WholeNumber = Annotated[
    int, PlainValidator(whole_number), WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}]})
]
AwareDateTime = Annotated[dt.datetime, BeforeValidator(_iso_text), AfterValidator(_to_utc)]


class Input(Schema):
    """Request bodies refuse unknown fields: a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- requests


def _fixing_rule(value: Any) -> Any:
    """The rule as sent, whole: the service checks it by the one checker (`oracle.fixing_rules.validate_rule`)
    and refuses it with 422 `invalid_fixing_rule` and the checker's message. Only text no database can store
    (NUL characters) is refused here, with the same code."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            raise PydanticCustomError("invalid_fixing_rule", "must not contain NUL characters")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


_WINDOWED = {
    "window": {"type": "integer", "minimum": 1, "maximum": 86400, "description": "Seconds before t2 (default 60)"},
    "after": {"type": "integer", "minimum": 0, "maximum": 86400, "description": "Seconds after t2 (a centred window)"},
    "min_ticks": {"type": "integer", "minimum": 1, "description": "Sufficiency: ticks in the window at least"},
    "min_volume": {"type": "string", "description": 'Sufficiency: units traded in the window at least ("1000")'},
    "source": {"type": "string", "description": "Only this source's ticks (required by close)"},
}
FIXING_RULE_SCHEMA = {
    "type": "object",
    "description": 'How S_t2 is taken from the oracle\'s ticks (default {"rule": "last"}). A base rule: last, '
    "close (a named source's last tick at or before t2), median, twap, vwap (over `window` seconds before t2 and "
    "`after` seconds after it, with optional `min_ticks`, `min_volume`, `source`); `composite`: each source's "
    "fixing by an `inner` base rule, then their median, at least `min_sources` left after dropping those further "
    "than `max_deviation` (a fraction) from the median; `fallback`: `tiers` (1 to 8 base or composite rules) "
    "tried in order, the first that answers wins. A bad rule is refused with 422 invalid_fixing_rule.",
    "properties": {
        "rule": {"type": "string", "enum": ["last", "close", "median", "twap", "vwap", "composite", "fallback"]},
        **_WINDOWED,
        "inner": {"type": "object", "description": "composite: the base rule each source's fixing is made by"},
        "sources": {"type": "array", "items": {"type": "string"}, "description": "composite: 1 to 16 source names"},
        "min_sources": {"type": "integer", "minimum": 1, "description": "composite: sources needed (default 1)"},
        "max_deviation": {"type": "string", "description": 'composite: drop sources this far from the median ("0.02")'},
        "tiers": {"type": "array", "items": {"type": "object"}, "description": "fallback: the ladder, in order"},
    },
    "examples": [
        {"rule": "fallback", "tiers": [{"rule": "vwap", "window": 300, "min_volume": "1000"}, {"rule": "last"}]},
        {
            "rule": "composite",
            "inner": {"rule": "median", "window": 60},
            "sources": ["a", "b", "c"],
            "min_sources": 2,
            "max_deviation": "0.02",
        },
    ],
}
FixingRule = Annotated[Any, PlainValidator(_fixing_rule), WithJsonSchema(FIXING_RULE_SCHEMA)]


class SessionCreateIn(Input):
    session_id: Text = Field(
        ...,
        max_length=64,
        description="1-64 letters, digits, - or _; unique ignoring case (DEMO cannot be created beside demo)",
        examples=["demo"],
    )
    title: Text = Field("", max_length=200)
    legs: list[Text] = Field(
        ...,
        max_length=64,
        description=f"{domain.MIN_LEGS} to {domain.MAX_LEGS} leg names: {units.LEG_RULE}; case is kept and names "
        "must differ ignoring case (GOLD 3m and gold 3M are one leg)",
        examples=[["AAPL", "NVDA", "META", "ORCL"], ["GOLD 3m", "GOLD 1y", "GOLD 5y"]],
    )
    q: list[ExactNumber] = Field(
        ...,
        max_length=64,
        description=f"Basket: one quantity per leg, more than 0 and at most {units.MAX_QTY_UNITS:,} units, "
        f"{units.QTY_DP} decimals at most",
    )
    start_mode: Literal["immediate", "scheduled"] = "immediate"
    end_mode: Literal["manual", "timed"] = "manual"
    allocation_mode: Literal["pro_rata", "custom"] = "pro_rata"
    t1: AwareDateTime | None = Field(None, description="When a scheduled session opens (with timezone)")
    t2: AwareDateTime | None = Field(None, description="When a timed session settles (with timezone)")
    fixing_rule: FixingRule = None
    visibility: Literal["public", "participants"] = Field(
        "public", description="public: any signed-in user may watch; participants: only its participants see it"
    )
    mechanism: Literal["rfq", "batch", "both"] = Field(
        "rfq", description="rfq: request, quote, accept; batch: sealed limit orders cleared every batch_seconds; both"
    )
    batch_seconds: Setting | None = Field(None, description="Batch auctions: seconds between cuts, 1 to 3,600 (10)")
    batch_band: Setting | None = Field(
        None,
        description="Batch auctions: each clearing price within this fraction of the oracle's price at the cut, "
        "more than 0, at most 0.5, 4 decimals at most (default 0.10)",
    )
    max_orders: Setting | None = Field(None, description="Batch auctions: resting orders per participant (20)")
    min_order: Setting | None = Field(None, description="Batch auctions: least order size in units (0.01)")
    short_limit: Setting | None = Field(
        None,
        description="Bounded shorting: the most any participant may be short of a leg, and the pool's gross short "
        "cap per leg, as a fraction of q_k: more than 0, at most 1, 4 decimals at most (left out or 0: no shorts)",
        examples=["0.2"],
    )
    margin_band: Setting | None = Field(
        None,
        description="Bounded shorting: the scenario box, each price from S(1-m) to S(1+m) around the oracle's latest; "
        "more than 0, at most 0.9 (default 0.15; needs short_limit)",
    )
    initial_margin: Setting | None = Field(
        None,
        description="Bounded shorting: the requirement, this fraction of the gross short value; 0 to 1 "
        "(default 0.05; needs short_limit)",
    )


class JoinIn(Input):
    role: Literal["trader", "maker"]
    username: Text | None = Field(
        None, min_length=1, max_length=150, description="Organiser only: add this user instead of yourself"
    )


class OpenIn(Input):
    allocation: dict[Text, list[ExactNumber]] | None = Field(
        None,
        max_length=1000,
        description="Custom initial allocation: username -> one quantity per leg; leave the key out for the "
        "session's own allocation mode (null is refused)",
    )

    @field_validator("allocation", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        """`"allocation": null` is refused: it is not the same as leaving the key out (pro rata)."""
        if value is None:
            raise PydanticCustomError(
                "invalid_allocation",
                "must map each trader and maker to one quantity per leg; leave the key out to open with the "
                "session's allocation mode",
            )
        return value


class RFQIn(Input):
    give_leg: Text = Field(..., max_length=32, examples=["AAPL"])
    get_leg: Text = Field(..., max_length=32, examples=["NVDA"])
    quantity: ExactNumber = Field(
        ..., description=f"Units of the give leg, at most {units.MAX_QTY_UNITS:,}, {units.QTY_DP} decimals at most"
    )


class OrderIn(Input):
    give_leg: Text = Field(..., max_length=32, examples=["AAPL"])
    get_leg: Text = Field(..., max_length=32, examples=["NVDA"])
    quantity: ExactNumber = Field(
        ...,
        description=f"Units of the give leg to give at most, {units.QTY_DP} decimals at most; reserved while it rests",
    )
    limit_rate: ExactNumber = Field(
        ...,
        description=f"Least units of the get leg per unit given, at most {units.MAX_RATE:,}, {units.RATE_DP} decimals",
    )
    good_for: Setting | None = Field(None, description="Batches it lives for, 1 to 1,000 (default 1)")
    gtc: StrictBool | None = Field(None, description="true: good till cancelled (not with good_for)")


class QuoteIn(Input):
    rate: ExactNumber = Field(
        ...,
        description=f"Units of the get leg per unit of the give leg, at most {units.MAX_RATE:,}, "
        f"{units.RATE_DP} decimals at most",
    )
    ttl_seconds: WholeNumber = Field(60, description="How long the quote stays live (1 to 86400 s)")


class SettleIn(Input):
    prices: dict[Text, ExactNumber] | None = Field(
        None,
        max_length=64,
        description=f"S_t2 per leg (one price per leg, legs named in any case; at most {units.MAX_PRICE:,}, "
        f"{units.PRICE_DP} decimals at most); leave the key out to settle at the oracle's fixing",
    )

    @field_validator("prices", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        """`"prices": null` is refused: it is not the same as leaving the key out (the fixing)."""
        if value is None:
            raise PydanticCustomError(
                "invalid_prices", "must map each leg to a price; leave the key out to settle at the fixing"
            )
        return value
