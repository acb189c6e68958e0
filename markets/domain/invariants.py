"""The invariants every command checks before it commits and verify_ledger checks on the log: 1
conservation, 2 no holding below zero (or below minus the short limit), 3 zero-sum trades, 4 the
settlement sum, 5 no payout below zero. Re-exported by `markets.domain`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markets.domain import InvariantViolation, money_str, payout, qty_str


def check_conservation(holdings: Mapping[str, Sequence[int]], q: Sequence[int], tolerance: int = 0) -> None:
    """1. For each leg k: sum_i x[i][k] == q[k] (within `tolerance` base units; 0 by default)."""
    for k, total in enumerate(q):
        held = sum(row[k] for row in holdings.values())
        if abs(held - total) > tolerance:
            raise InvariantViolation(
                f"Conservation broken on leg #{k}: holdings sum to {qty_str(held)}, q is {qty_str(total)}"
            )


def check_non_negative(holdings: Mapping[str, Sequence[int]]) -> None:
    """2. No internal shorting: every x[i][k] >= 0."""
    for holder, row in holdings.items():
        for k, x in enumerate(row):
            if x < 0:
                raise InvariantViolation(f"Negative holding: {holder} would hold {qty_str(x)} of leg #{k}")


def check_leg_totals(
    totals: Sequence[int],
    lows: Sequence[int],
    q: Sequence[int],
    tolerance: int = 0,
    caps: Sequence[int] | None = None,
    shorts: Sequence[int] | None = None,
) -> None:
    """1 and 2 from per-leg aggregates (sum and minimum of x[.][k]), as the database computes them. With
    shorting, `caps` is the short limit per leg and `shorts` the pool's shorts: 2 reads low >= -cap and
    shorts <= cap."""
    if caps is not None:
        check_short_bounds(lows, shorts or [0] * len(caps), caps)
        lows = [0] * len(lows)
    for k, (held, expected) in enumerate(zip(totals, q, strict=True)):
        if abs(held - expected) > tolerance:
            raise InvariantViolation(
                f"Conservation broken on leg #{k}: holdings sum to {qty_str(held)}, q is {qty_str(expected)}"
            )
    for k, low in enumerate(lows):
        if low < 0:
            raise InvariantViolation(f"Negative holding: someone would hold {qty_str(low)} of leg #{k}")


def check_short_bounds(lows: Sequence[int], shorts: Sequence[int], caps: Sequence[int]) -> None:
    """2, with shorting: nobody below minus the short limit of a leg, the pool's shorts within it."""
    for k, (low, short, cap) in enumerate(zip(lows, shorts, caps, strict=True)):
        if low < -cap:
            raise InvariantViolation(
                f"Short limit broken: someone would hold {qty_str(low)} of leg #{k} (cap {qty_str(cap)})"
            )
        if short > cap:
            raise InvariantViolation(f"Gross short cap broken on leg #{k}: {qty_str(short)} short, cap {qty_str(cap)}")


def check_zero_sum(*deltas: Sequence[int]) -> None:
    """3. Reallocation only: the deltas of a trade sum to the zero vector."""
    if not deltas:
        return
    for k in range(len(deltas[0])):
        if sum(d[k] for d in deltas) != 0:
            raise InvariantViolation(f"Trade is not zero-sum on leg #{k}")


def check_payouts_not_negative(payout_by_holder: Mapping[str, int]) -> None:
    """5. No payout below 0 (a deficit from shorts is haircut from the positive payouts)."""
    for holder, amount in payout_by_holder.items():
        if amount < 0:
            raise InvariantViolation(f"Negative payout: {holder} would be paid {money_str(amount)}")


def check_settlement_sum(
    payout_by_holder: Mapping[str, int], q: Sequence[int], prices: Sequence[int], cash: int = 0
) -> None:
    """4. sum_i payout_i == q . S exactly, plus the cash corporate actions paid into the pool (`cash`)."""
    total = sum(payout_by_holder.values())
    expected = payout(q, prices) + cash
    if total != expected:
        said = "q.S" if not cash else f"q.S + cash {money_str(cash)}"
        raise InvariantViolation(f"Settlement sum {money_str(total)} differs from {said} = {money_str(expected)}")
