"""A corporate action in a generated log (bench.eventlog): before its settlement a session splits its first leg
2-for-1 (CorporateActionScheduled, then CorporateActionApplied as the services write it, made by the same pure
rule: `markets.domain.actions.outcome`, on the holdings and on the initial allocation), so that a log covers
both events and the replay, the quick check and verify_ledger meet them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from markets import domain
from markets.domain import actions

RATIO = "2/1"


def split(st, at: dt.datetime, price: int) -> list[tuple[str, dict[str, Any]]]:
    """The two events of a 2-for-1 split of the stream's first leg at `at`, with `st` moved to after it."""
    leg = st.legs[0]
    params = {"ratio": RATIO}
    prices = [price] * len(st.legs)
    before = {u: list(row) for u, row in st.holdings.items()}
    made = actions.outcome("split", leg, params, st.legs, st.q, before, prices)
    carried = actions.outcome("split", leg, params, st.legs, st.q, st.initial, prices)
    number = st.actions = getattr(st, "actions", 0) + 1
    scheduled = {"action": number, "kind": "split", "leg": leg, "effective_at": at.isoformat(), "params": params}
    applied = (
        {
            "action": number,
            "kind": "split",
            "leg": leg,
            "at": at.isoformat(),
            "effective_at": at.isoformat(),
            "prices": dict(zip(st.legs, prices, strict=True)),
            "ticks": {},
            "holdings_before": {str(u): row for u, row in sorted(before.items())},
        }
        | made
        | {"initial_deltas_by_id": carried["deltas_by_id"], "initial_cash_by_id": carried["cash_by_id"]}
    )
    for user, row in made["deltas_by_id"].items():
        st.holdings[int(user)] = [x + d for x, d in zip(st.holdings[int(user)], row, strict=True)]
    for user, row in carried["deltas_by_id"].items():
        st.initial[int(user)] = [x + d for x, d in zip(st.initial[int(user)], row, strict=True)]
    st.q = made["q_after"]
    assert not made["cash_by_id"], "a 2-for-1 split of whole base units pays no cash in lieu"
    domain.check_conservation(st.holdings, st.q)
    return [("CorporateActionScheduled", scheduled), ("CorporateActionApplied", applied)]
