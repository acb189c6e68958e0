"""Events name people by immutable user ids, so an account renamed in the admin changes nothing in replay
or verification, and a newcomer taking an old name inherits nothing. Logs written before that (people
named by username) still replay."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from conftest import create_demo, make_user
from ledger import store
from markets import audit, projections, services
from markets.errors import Conflict
from markets.models import Participant, Session

pytestmark = pytest.mark.django_db


def trade_once(users, sid: str = "demo") -> None:
    rfq = services.request_rfq(users["alice"], sid, "AAPL", "NVDA", "10")
    services.accept_quote(users["alice"], services.provide_quote(users["mm"], rfq.id, "0.62").id)


def test_renaming_a_user_changes_nothing_in_replay_or_verification(users):
    create_demo(users)
    trade_once(users)
    before = projections.holdings_by_user("demo")
    alice = users["alice"]
    alice.username = "alicia"
    alice.save()
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "demo: " in out.getvalue() and "ok" in out.getvalue()
    if connection.vendor == "sqlite":
        call_command("verify_ledger", "--quick", stdout=StringIO())
    # A newcomer takes the old name: a rebuilt projection still gives the holdings to the same account.
    newcomer = make_user("alice")
    rebuilt = projections.rebuild("demo")
    holders = {user_id for user_id, *_ in rebuilt["holdings"]}
    assert alice.pk in holders and newcomer.pk not in holders
    assert projections.holdings_by_user("demo") == before
    # The floor names participants as they joined; the ids behind the names did not move.
    assert Participant.objects.get(session_id="demo", user=alice).username == "alice"
    assert audit.verify_session("demo").ok


def test_a_deactivated_user_cannot_be_added_or_join(users):
    create_demo(users, "pre", open_it=False)
    get_user_model().objects.filter(pk=users["eve"].pk).update(is_active=False)
    eve = get_user_model().objects.get(pk=users["eve"].pk)
    for act in (
        lambda: services.join_session(users["org"], "pre", "trader", username="eve"),
        lambda: services.join_session(eve, "pre", "maker"),
    ):
        with pytest.raises(Conflict) as info:
            act()
        assert info.value.code == "user_inactive"
    services.open_session(users["org"], "pre")
    assert not Participant.objects.filter(session_id="pre", user=eve).exists()
    assert users["eve"].pk not in projections.holdings_by_user("pre")


def _legacy_log(users, sid: str = "old") -> None:
    """A session written the way the log was before participants were named by id (usernames)."""
    org, alice, mm = users["org"], users["alice"], users["mm"]
    at = dt.datetime(2029, 5, 1, 12, tzinfo=dt.UTC)
    q = [10_000_000, 20_000_000]
    half = [[5_000_000, 10_000_000], [5_000_000, 10_000_000]]
    payloads = [
        ("SessionCreated", {"session_id": sid, "title": "", "legs": ["AAPL", "NVDA"], "q": q, "t1": None, "t2": None,
                            "start_mode": "immediate", "end_mode": "manual", "allocation_mode": "pro_rata",
                            "fixing_rule": {"rule": "last"}, "created_by": org.username,
                            "scales": {"qty_dp": 6, "rate_dp": 8, "price_dp": 6}}),
        ("ParticipantJoined", {"username": org.username, "role": "organiser"}),
        ("ParticipantJoined", {"username": alice.username, "role": "trader"}),
        ("ParticipantJoined", {"username": mm.username, "role": "maker"}),
        ("InitialAllocationAssigned", {"mode": "pro_rata", "holdings": {"alice": half[0], "mm": half[1]}}),
        ("SessionOpened", {}),
        ("RFQRequested", {"rfq_id": 900, "taker": "alice", "give_leg": "AAPL", "get_leg": "NVDA", "quantity": 1_000_000}),
        ("QuoteProvided", {"quote_id": 900, "rfq_id": 900, "maker": "mm", "rate": 200_000_000,
                           "expires_at": "2029-05-01T12:01:00+00:00"}),
        ("TradeExecuted", {"trade_id": 900, "rfq_id": 900, "quote_id": 900, "taker": "alice", "maker": "mm",
                           "give_leg": "AAPL", "get_leg": "NVDA", "give_qty": 1_000_000, "get_qty": 2_000_000,
                           "rate": 200_000_000, "taker_deltas": [-1_000_000, 2_000_000],
                           "maker_deltas": [1_000_000, -2_000_000]}),
        ("SessionSettled", {"prices": {"AAPL": 2_000_000, "NVDA": 1_000_000}, "fixing": {"source": "manual"},
                            "payouts": {"alice": "20.000000000000", "mm": "20.000000000000"},
                            "total": "40.000000000000", "expected": "40.000000000000"}),
    ]  # fmt: skip
    with transaction.atomic():
        for version, (type_, payload) in enumerate(payloads):
            event = store.append(f"session-{sid}", type_, payload, expected_version=version, at=at)
            projections.apply(event)


def test_a_log_written_before_ids_still_verifies_and_a_rename_is_named_not_a_traceback(users):
    _legacy_log(users)
    assert Session.objects.get(id="old").status == "settled"
    assert projections.holdings_matrix("old") == {"alice": [4_000_000, 12_000_000], "mm": [6_000_000, 8_000_000]}
    call_command("verify_ledger", "old", stdout=StringIO())
    if connection.vendor == "sqlite":
        call_command("verify_ledger", "--quick", "old", stdout=StringIO())
    users["alice"].username = "alicia"
    users["alice"].save()
    with pytest.raises(CommandError) as info:
        call_command("verify_ledger", "old", stdout=StringIO())
    message = str(info.value)
    assert "cannot be replayed: this old event names user 'alice', and no account has that name now" in message
    assert "Traceback" not in message and "DoesNotExist" not in message
