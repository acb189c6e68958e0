"""Pure pricing rules beside the market's rules (markets.domain): what the oracle's prices imply a
reallocation is worth. Hints for people and bots; no command depends on them. No Django."""

from __future__ import annotations

from oracle.units import RATE_SCALE


def implied_rate(give_price: int, get_price: int) -> int:
    """The oracle-implied rate (base units, RATE_DP): units of the get leg one unit of the give leg is
    worth at these prices, give_price / get_price, rounded to the nearest unit (halves up). A quote at
    this rate is a fair swap at these prices; above it favours the taker, below it the maker."""
    if give_price <= 0 or get_price <= 0:
        raise ValueError("prices must be positive")
    return (2 * give_price * RATE_SCALE + get_price) // (2 * get_price)


def distance_bp(rate: int, fair: int) -> int:
    """How far `rate` lies from `fair`, in basis points of `fair` (rounded toward zero): + is more of
    the get leg for the taker than the prices imply."""
    n = (rate - fair) * 10000
    return n // fair if n >= 0 else -(-n // fair)
