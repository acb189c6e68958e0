"""The trade path reads and builds rows without the ORM's query building: what it hands back must be
what the ORM would have read."""

from __future__ import annotations

import datetime as dt

import pytest

from ledger import clock
from markets import floor_sql, services, sql
from markets.models import Session, Trade

pytestmark = pytest.mark.django_db


def fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_a_session_row_reads_as_the_orm_reads_it(users, demo):
    t1 = clock.now() + dt.timedelta(hours=1)
    services.create_session(
        users["org"],
        session_id="timed",
        legs=["AAPL", "NVDA"],
        q=["1.5", "2"],
        title="Timed één",
        t1=t1,
        t2=t1 + dt.timedelta(hours=2),
        start_mode="scheduled",
        end_mode="timed",
        fixing_rule={"rule": "twap", "window": 60},
    )
    for sid in ("demo", "timed"):
        got = sql.get_by_pk(Session, sid)
        assert fields(got) == fields(Session.objects.get(id=sid))
        assert got.t1 is None or got.t1.tzinfo is not None
        assert not got._state.adding
    assert sql.get_by_pk(Session, "nope") is None
    with pytest.raises(Session.DoesNotExist, match="no session 'nope'"):
        sql.get_existing(Session, "nope")
    assert fields(sql.get_existing(Session, "demo")) == fields(Session.objects.get(id="demo"))


def test_the_trade_an_accept_returns_is_the_stored_row(users, demo):
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    trade = services.accept_quote(users["alice"], quote.id)
    assert fields(trade) == fields(Trade.objects.get(id=trade.id))
    assert trade.taker.username == "alice" and trade.maker.username == "mm"
    # Both parties come with it, as stored, so the API answers without reading them again.
    stored = Trade.objects.select_related("taker", "maker").get(id=trade.id)
    for got, want in ((trade.taker, stored.taker), (trade.maker, stored.maker)):
        assert (got.id, got.user_id, got.username, got.role, got.session_id) == (
            want.id, want.user_id, want.username, want.role, want.session_id
        )  # fmt: skip


def test_the_floor_s_reads_are_what_the_orm_reads(users, demo):
    """The push and the floor read rows, their parties, the holdings and the names by hand: the same rows
    and values as the ORM's queries, in the same order."""
    from markets.models import RFQ, Holding, Participant, Quote

    for give, get, maker, rate in (("AAPL", "NVDA", "mm", "0.62"), ("NVDA", "AAPL", "mm2", "1.5")):
        rfq = services.request_rfq(users["alice"], "demo", give, get, "3")
        services.accept_quote(users["alice"], services.provide_quote(users[maker], rfq.id, rate).id)
    open_rfq = services.request_rfq(users["bob"], "demo", "AAPL", "NVDA", "1")
    for maker, rate in (("mm2", "0.7"), ("mm", "0.6")):
        services.provide_quote(users[maker], open_rfq.id, rate)

    parties = floor_sql.Parties("demo")  # one read: the names and every row's parties
    trades = floor_sql.trades(parties, limit=1)
    want = list(Trade.objects.filter(session_id="demo").select_related("taker", "maker").order_by("-id")[:1])
    assert [fields(t) for t in trades] == [fields(t) for t in want]
    assert [(fields(t.taker), fields(t.maker)) for t in trades] == [(fields(t.taker), fields(t.maker)) for t in want]
    both = list(Trade.objects.filter(session_id="demo").order_by("-id").values_list("id", flat=True))
    assert [t.id for t in floor_sql.trades(parties, ids=both)] == both and floor_sql.trades(parties, ids=[]) == []
    assert [t.id for t in floor_sql.trades(parties, limit=5, before=both[0])] == both[1:]
    quotes = floor_sql.live_quotes([open_rfq.id], parties)
    assert [(fields(q), q.maker.username) for q in quotes] == [
        (fields(q), q.maker.username) for q in Quote.objects.filter(rfq=open_rfq).order_by("rate", "id")
    ]
    assert [q.maker.username for q in quotes] == ["mm", "mm2"]  # best rate first
    assert [fields(r) for r in sql.rows_of(RFQ, '"session_id" = %s', ["demo"], '"id"')] == [
        fields(r) for r in RFQ.objects.filter(session_id="demo").order_by("id")
    ]
    opened = floor_sql.open_rfqs("demo", parties)
    assert [(fields(r), fields(r.taker)) for r in opened] == [
        (fields(r), fields(r.taker))
        for r in RFQ.objects.filter(session_id="demo", status=RFQ.Status.OPEN).select_related("taker").order_by("-id")
    ]
    assert floor_sql.open_rfqs("demo", parties, only=[]) == [] and floor_sql.live_quotes([], parties) == []
    assert parties.attach([], "taker") == []
    assert floor_sql.holdings_of("demo") == list(
        Holding.objects.filter(session_id="demo")
        .order_by("participant__username", "leg_index")
        .values_list(
            "participant__username",
            "participant__display_name",
            "participant__role",
            "participant__user_id",
            "leg_index",
            "qty",
            "initial",
        )
    )
    by_name: dict[str, list[int]] = {}
    for name, qty in (
        Holding.objects.filter(session_id="demo")
        .order_by("participant__username", "leg_index")
        .values_list("participant__username", "qty")
    ):
        by_name.setdefault(name, []).append(qty)
    assert floor_sql.holdings_by_name("demo") == by_name and list(floor_sql.holdings_by_name("demo")) == list(by_name)
    assert floor_sql.trade_count("demo") == 2 and floor_sql.trade_count("nope") == 0
    assert parties.names() == dict(Participant.objects.filter(session_id="demo").values_list("user_id", "display_name"))
    assert [
        fields(r.taker) for r in parties.attach(list(RFQ.objects.filter(session_id="demo").order_by("id")), "taker")
    ] == [fields(r.taker) for r in RFQ.objects.filter(session_id="demo").select_related("taker").order_by("id")]


def _holdings(session_id: str) -> dict[tuple[str, int], int]:
    from markets.models import Holding

    rows = Holding.objects.filter(participant__session_id=session_id)
    return {(h.participant.username, h.leg_index): h.qty for h in rows.select_related("participant")}


def test_an_error_in_pipelined_writes_is_django_s_and_the_transaction_rolls_back(users, demo):
    """Pipelined writes fail when the block ends (PostgreSQL) or at the statement (SQLite): either way as
    Django's IntegrityError, which the commands turn into a retry, and nothing of the block is kept."""
    from django.db import IntegrityError, transaction

    from markets.models import RFQ

    before = RFQ.objects.count()
    row = RFQ(id=9001, session_id="demo", taker_id=demo.participants.get(username="alice").id, give_leg="AAPL",
              get_leg="NVDA", quantity=10, status=RFQ.Status.OPEN, created_at=clock.now())  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic(), sql.pipelined():
        sql.insert(row)
        row._state.adding = True
        sql.insert(row)  # the same id again
    assert RFQ.objects.count() == before


@pytest.mark.postgres_only("pipeline mode is PostgreSQL's; SQLite runs in the process, with no round trip to save")
def test_a_trade_s_writes_reach_postgresql_without_waiting_between_them(users, demo, tmp_path):
    """libpq's own trace of one accept: the projection's writes (four holdings, the RFQ, its quotes, the
    trade, the session's stamp) are all sent before PostgreSQL answers the first of them."""
    from django.db import connection

    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    connection.ensure_connection()
    trace = tmp_path / "libpq.trace"
    with open(trace, "w") as out:
        connection.connection.pgconn.trace(out.fileno())
        try:
            services.accept_quote(users["alice"], quote.id)
        finally:
            connection.connection.pgconn.untrace()
    # Each line: time, direction (F: to the server, B: from it), length, message and its text.
    messages = [(p[1], " ".join(p[3:])) for p in (line.split("\t") for line in trace.read_text().splitlines())]
    first = next(i for i, (d, m) in enumerate(messages) if d == "F" and 'UPDATE "markets_holding"' in m)
    stamp = next(i for i, (d, m) in enumerate(messages) if d == "F" and 'UPDATE "markets_session"' in m)
    between = messages[first : stamp + 1]
    assert len([m for d, m in between if m.startswith("Parse")]) == 8, between
    assert all(d == "F" for d, _ in between), "PostgreSQL answered before the last write was sent"


@pytest.mark.postgres_only("the trade ids come from a PostgreSQL sequence; SQLite's are MAX(id) + 1")
def test_a_trade_whose_pipelined_insert_collides_retries_whole_and_moves_holdings_once(users, demo):
    """The sequence set back onto an existing trade id: the first attempt's trade insert fails inside the
    pipeline, the command rolls back (event, holdings, RFQ) and runs again with the next id."""
    from django.db import connection

    from ledger.models import Event

    first = services.accept_quote(
        users["alice"], services.provide_quote(users["mm"], services.request_rfq(users["alice"], "demo", "AAPL",
                                                                                 "NVDA", "10").id, "0.62").id
    )  # fmt: skip
    rfq = services.request_rfq(users["alice"], "demo", "AAPL", "NVDA", "10")
    quote = services.provide_quote(users["mm"], rfq.id, "0.62")
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval('markets_trade_ids', %s, false)", [first.id])  # next id: taken
    before, events = _holdings("demo"), Event.objects.count()
    trade = services.accept_quote(users["alice"], quote.id)
    assert trade.id > first.id
    assert Event.objects.count() == events + 1
    after = _holdings("demo")
    moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert moved == {("alice", 0): -10_000_000, ("alice", 1): 6_200_000, ("mm", 0): 10_000_000,
                     ("mm", 1): -6_200_000}  # fmt: skip
    assert Trade.objects.filter(rfq_id=rfq.id).count() == 1
