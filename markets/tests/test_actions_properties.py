"""Corporate actions over random sessions (hypothesis, through the services): random trades, then a random
sequence of splits (odd ratios, so cash in lieu and leftover units occur), dividends and mergers at their
cuts, then the settlement. Whatever the sequence: every leg sums to q exactly after each action, no unit is
made or lost but as the rule says (q' = floor(q r)), the payouts sum to q . S plus the cash paid in and
the P&Ls to exactly 0, replay rebuilds the projection and verify_ledger finds nothing."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from conftest import create_demo
from ledger import clock
from markets import audit, projections, services
from markets.domain import DomainError
from markets.models import Session
from markets.selectors.results import session_results
from oracle.models import Tick

T0 = dt.datetime(2030, 8, 5, 13, 0, tzinfo=dt.UTC)
U = 10**6
LEGS = ["AAPL", "NVDA", "META", "ORCL"]

actions = st.one_of(
    st.tuples(st.just("split"), st.sampled_from(LEGS), st.sampled_from(["10/1", "1/7", "3/2", "2/3", "1/10", "7/3"])),
    st.tuples(st.just("dividend"), st.sampled_from(LEGS), st.sampled_from(["0.01", "0.25", "1.333333"])),
    st.tuples(
        st.just("merger"), st.sampled_from(LEGS), st.sampled_from(["cash:120", "into:ORCL:0.75", "into:AAPL:1/3"])
    ),
)
trades = st.tuples(st.sampled_from(["alice", "bob"]), st.sampled_from(LEGS), st.sampled_from(LEGS), st.integers(1, 9))


def _params(kind: str, value: str) -> dict:
    if kind == "split":
        return {"ratio": value}
    if kind == "dividend":
        return {"amount": value}
    if value.startswith("cash:"):
        return {"cash": value.split(":")[1]}
    _, into, ratio = value.split(":")
    return {"into": into, "ratio": ratio}


@pytest.mark.django_db
@settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=st.lists(trades, max_size=4), steps=st.lists(actions, min_size=1, max_size=4))
def test_any_sequence_of_actions_keeps_every_sum_exact_and_the_ledger_verifies(users, moves, steps):
    note(f"trades {moves}, actions {steps}")
    with transaction.atomic():
        clock.set_time(T0)
        create_demo(users, "prop", q=[101, 61, 83, 127])  # odd quantities: fractions at every split
        Tick.objects.bulk_create(
            Tick(session_id="prop", symbol=leg, at=T0, price=p * U, source="t")
            for leg, p in zip(LEGS, (190, 121, 333, 17), strict=True)
        )
        traders = set()
        for who, give, get, units in moves:
            if give == get:
                continue
            try:
                rfq = services.request_rfq(users[who], "prop", give, get, str(units))
            except DomainError:
                continue  # more than it holds: refused, nothing written
            try:
                quote = services.provide_quote(users["mm"], rfq.id, "0.5")
                services.accept_quote(users[who], quote.id)
                traders |= {who, "mm"}
            except DomainError:
                services.cancel_rfq(users[who], rfq.id)
        at = T0
        for kind, leg, value in steps:
            at += dt.timedelta(minutes=1)
            session = Session.objects.get(id="prop")
            before = list(session.q)
            try:
                services.schedule_action(users["org"], "prop", kind, leg, at, **_params(kind, value))
            except DomainError:
                continue  # a merger into itself: refused, nothing written
            clock.set_time(at)
            services.run_due()
            session = Session.objects.get(id="prop")
            matrix = projections.holdings_by_user("prop")
            assert [sum(row[k] for row in matrix.values()) for k in range(len(LEGS))] == session.q
            if kind == "split":
                k = LEGS.index(leg)
                ratio = Fraction(value)
                assert session.q[k] == before[k] * ratio.numerator // ratio.denominator
        services.settle_session(
            users["org"], "prop", prices={"AAPL": "200", "NVDA": "2.5", "META": "300", "ORCL": "20"}
        )
        results = session_results(Session.objects.get(id="prop"))
        assert results.exact  # the payouts sum to q . S plus the cash paid in, and the P&Ls to 0
        assert audit.verify_session("prop").problems == []
        assert projections.diff(projections.snapshot("prop"), projections.rebuild("prop")) == []
        transaction.set_rollback(True)
