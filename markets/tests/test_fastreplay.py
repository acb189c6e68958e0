"""markets.fastreplay rebuilds exactly the holdings that the reference replay (projections.rebuild) does."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.db import connection

from bench.common import make_users
from bench.eventlog import INSERT_SQL, GeneratedLog, usernames
from conftest import create_demo, make_user
from ledger import store
from ledger.models import Event
from ledger.tests.test_sqlite import log_file
from markets import fastreplay, projections, services

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.sqlite_only("markets.fastreplay replays a SQLite file (verify_ledger --quick and the bench)"),
]


def events_of(rows) -> list[Event]:
    return [
        Event(
            seq=seq,
            stream=stream,
            version=version,
            type=type_,
            payload=payload,
            at=dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC),
            prev_hash=prev,
            hash=digest,
        )
        for seq, stream, version, type_, payload, at, prev, digest in rows
    ]


def reference(session_id: str, events: list[Event]) -> dict[int, list[int]]:
    """holdings_by_user's shape, from the reference replay's snapshot."""
    matrix: dict[int, list[int]] = {}
    for user_id, _leg, _k, qty, _initial, _reserved in projections.rebuild(session_id, events)["holdings"]:
        matrix.setdefault(user_id, []).append(qty)
    return matrix


def generated(n: int, sessions: int = 1, *, participants: int = 10, legs: int = 5, seed: int = 1):
    organiser, traders, makers = usernames(participants)
    users = make_users([organiser, *traders, *makers])
    ids = {name: user.pk for name, user in users.items()}
    log = GeneratedLog(n, sessions, participants=participants, legs=legs, seed=seed, settle=True, user_ids=ids)
    rows = list(log.rows())
    log.organiser_id = ids[organiser]
    return log, rows


def by_stream(rows, stream):
    return [r for r in rows if r[1] == stream]


def test_a_generated_log_with_every_event_type():
    log, rows = generated(3000)
    # Every type but a cancelled session's (it has no RFQ cycles to generate; see test_services).
    assert set(log.counts) == set(projections.HANDLERS) - {"SessionCancelled"}, "the log must cover every event type"
    assert log.counts["TradeExecuted"] > 500
    stream = log.streams[0]
    events = events_of(rows)
    expected = reference(stream.removeprefix("session-"), events)
    assert expected == log.holdings[stream]
    assert fastreplay.replay_holdings(events).as_dict() == expected
    assert fastreplay.replay_holdings([(e.type, e.payload) for e in events]).as_dict() == expected
    with connection.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows)
    replayed = fastreplay.replay_stream(connection, stream)
    assert replayed.as_dict() == expected
    assert replayed.legs == json.loads(rows[0][4])["legs"]
    assert replayed.holders == sorted(expected)
    applied = [json.loads(r[4])["q_after"] for r in rows if r[3] == "CorporateActionApplied"]
    assert applied, "the log splits a leg before it settles"
    assert replayed.totals() == applied[-1]  # q as the last corporate action left it (SessionCreated's before)


def test_interleaved_sessions_each_replay_on_their_own():
    log, rows = generated(2400, sessions=3, seed=2)
    with connection.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows)
    for stream in log.streams:
        expected = reference(stream.removeprefix("session-"), events_of(by_stream(rows, stream)))
        assert fastreplay.replay_stream(connection, stream).as_dict() == expected
        assert fastreplay.replay_log(connection)[stream].as_dict() == expected
    assert sorted(fastreplay.replay_log(connection)) == sorted(log.streams)


def test_the_json_path_agrees_with_the_fast_path(monkeypatch):
    log, rows = generated(2000, seed=3)
    fast = fastreplay.replay_holdings(events_of(rows))
    monkeypatch.setattr(fastreplay, "_canonical_trade", lambda n_legs: re.compile(r"(?!)"))
    slow = fastreplay.replay_holdings(events_of(rows))
    assert slow.as_dict() == fast.as_dict() == log.holdings[log.streams[0]]


def test_a_log_written_by_the_services_and_an_old_log_naming_people_by_username(users):
    """Real services, then the same log as written before participants were named by id (usernames in the
    trades, one of them one that canonical JSON escapes): the JSON path reads it, by name."""
    users["jose"] = make_user("Jos\u00e9")
    create_demo(users, open_it=False)
    services.join_session(users["jose"], "demo", "trader")
    services.open_session(users["org"], "demo")
    for taker, maker, give, get in [
        ("jose", "mm", "AAPL", "NVDA"),
        ("alice", "mm2", "META", "ORCL"),
        ("jose", "mm2", "ORCL", "AAPL"),
        ("bob", "mm", "NVDA", "META"),
    ]:
        rfq = services.request_rfq(users[taker], "demo", give, get, "1.5")
        quote = services.provide_quote(users[maker], rfq.id, "0.75")
        services.accept_quote(users[taker], quote.id)
    events = list(store.iter_stream("session-demo"))
    live = projections.holdings_by_user("demo")
    assert fastreplay.replay_holdings(events).as_dict() == live
    assert fastreplay.replay_stream(connection, "session-demo").as_dict() == live
    assert reference("demo", events) == live

    names = {u.pk: u.username for u in users.values()}
    old = []
    for event in events:
        d = event.data
        if event.type == "TradeExecuted":
            d = {k: v for k, v in d.items() if k not in ("taker_id", "maker_id")}
            d |= {"taker": names[event.data["taker_id"]], "maker": names[event.data["maker_id"]]}
        elif event.type == "InitialAllocationAssigned":
            d = {"mode": d["mode"], "holdings": {names[int(u)]: row for u, row in d["holdings_by_id"].items()}}
        old.append((event.type, store.canonical_json(d)))
    assert any("\\u00e9" in payload for type_, payload in old if type_ == "TradeExecuted")
    by_name = fastreplay.replay_holdings(old)
    assert by_name.by_name and by_name.as_dict() == projections.holdings_matrix("demo")


def test_trades_that_move_no_holding_row_in_the_projection_move_nothing_here():
    """A trade naming a participant without holdings (the organiser), and one before the allocation."""
    log, rows = generated(800, seed=4)
    rows = [list(r) for r in rows]
    trades = [r for r in rows if r[3] == "TradeExecuted"]
    payload = json.loads(trades[0][4])
    payload["maker_id"] = log.organiser_id
    trades[0][4] = store.canonical_json(payload)
    early = json.loads(trades[1][4]) | {"trade_id": 10**6, "quote_id": 10**6}
    allocation_at = next(i for i, r in enumerate(rows) if r[3] == "InitialAllocationAssigned")
    rows.insert(allocation_at, [10**7, rows[0][1], 0, "TradeExecuted", store.canonical_json(early), rows[0][5], "", ""])
    events = events_of(rows)
    expected = reference(rows[0][1].removeprefix("session-"), events)
    assert expected != log.holdings[log.streams[0]]  # the organiser's leg moved nowhere
    assert fastreplay.replay_holdings(events).as_dict() == expected
    with connection.cursor() as cursor:
        cursor.executemany(INSERT_SQL, rows)
    assert fastreplay.replay_log(connection)[rows[0][1]].as_dict() == expected


def test_numbers_beyond_int64_stay_exact():
    big = 2**62
    legs = ["A", "B"]
    events = [
        ("SessionCreated", json.dumps({"legs": legs})),
        ("InitialAllocationAssigned", json.dumps({"holdings": {"u1": [big, 0], "u2": [0, big]}})),
    ]
    for _ in range(3):
        trade = {"taker": "u1", "maker": "u2", "taker_deltas": [-(10**18), 10**18], "maker_deltas": [10**18, -(10**18)]}
        events.append(("TradeExecuted", store.canonical_json(trade)))
    events.append(
        (
            "TradeExecuted",
            store.canonical_json(
                {"taker": "u1", "maker": "u2", "taker_deltas": [-(10**20), 10**20], "maker_deltas": [10**20, -(10**20)]}
            ),
        )
    )
    result = fastreplay.replay_holdings(events)
    moved = 3 * 10**18 + 10**20
    assert result.as_dict() == {"u1": [big - moved, moved], "u2": [moved, big - moved]}


def test_before_the_allocation_there_are_no_holdings():
    assert fastreplay.replay_holdings([("SessionCreated", json.dumps({"legs": ["A", "B"]}))]).as_dict() == {}
    assert fastreplay.replay_holdings([]).as_dict() == {}
    with pytest.raises(ValueError):
        fastreplay.replay_holdings([("InitialAllocationAssigned", json.dumps({"holdings": {}}))])


@pytest.mark.parametrize("workers", [2, 3])
def test_a_file_replayed_by_several_processes_gives_the_same_holdings(tmp_path, workers):
    """Three interleaved sessions, a trade naming the organiser and one before the allocation: the sums
    of each process's seq range, added to the allocation, are the one-pass holdings."""
    log, rows = generated(2400, sessions=3, seed=5)
    rows = [list(r) for r in rows]
    trades = [r for r in rows if r[3] == "TradeExecuted"]
    payload = json.loads(trades[0][4]) | {"maker_id": log.organiser_id}
    trades[0][4] = store.canonical_json(payload)
    early = json.loads(trades[1][4]) | {"trade_id": 10**6, "quote_id": 10**6}
    allocation_at = next(i for i, r in enumerate(rows) if r[3] == "InitialAllocationAssigned" and r[1] == trades[1][1])
    rows.insert(
        allocation_at, [10**7, trades[1][1], 0, "TradeExecuted", store.canonical_json(early), rows[0][5], "", "x"]
    )
    path = tmp_path / "log.sqlite3"
    log_file(path, rows)
    one = {s: h.as_dict() for s, h in fastreplay.replay_log(path, workers=1).items()}
    assert {s: h.as_dict() for s, h in fastreplay.replay_log(path, workers=workers).items()} == one
    for stream in log.streams:
        assert one[stream] == reference(stream.removeprefix("session-"), events_of(by_stream(rows, stream)))


@pytest.mark.parametrize("mechanism", ["both", "rfq"])
def test_a_short_squeeze_in_the_log_replays_and_verifies_every_way(mechanism):
    """The generated session that allows shorting goes through a squeeze (a short, the leg jumping, the
    liquidation: buy-back orders and a cut, then deleveraging, in a batch session; deleveraging at once
    by RFQ): the services' projection (the loader), the reference replay, fastreplay, and verify_ledger
    (full and --quick) all agree, and nobody is left short."""
    from django.core.management import call_command

    from bench import loader

    organiser, traders, makers = usernames(10)
    users = make_users([organiser, *traders, *makers])
    ids = {name: user.pk for name, user in users.items()}
    log = GeneratedLog(1500, 2, participants=10, legs=4, seed=7, mechanism=mechanism, user_ids=ids)
    rows = list(log.rows())
    assert log.counts["PositionLiquidated"] == 1 and log.counts["AutoDeleveraged"] == 1  # one session squeezes
    liquidated = next(json.loads(r[4]) for r in rows if r[3] == "PositionLiquidated")
    adl = next(json.loads(r[4]) for r in rows if r[3] == "AutoDeleveraged")
    assert liquidated["method"] == ("buy_back" if mechanism == "both" else "deleverage")
    assert ("after_batch" in adl) == (mechanism == "both")
    assert adl["moves"] and adl["user_id"] == liquidated["user_id"]
    loader.load(rows)
    stream = next(r[1] for r in rows if r[3] == "PositionLiquidated")
    session_id = stream.removeprefix("session-")
    live = projections.holdings_by_user(session_id)
    assert min(min(row) for row in live.values()) >= 0 and live == log.holdings[stream]
    events = list(store.iter_stream(stream))
    assert reference(session_id, events) == live
    assert fastreplay.replay_log(connection)[stream].as_dict() == live
    assert projections.diff(projections.snapshot(session_id), projections.rebuild(session_id)) == []
    call_command("verify_ledger")
    call_command("verify_ledger", "--quick")
