"""The bots (`manage.py run_bots`, `markets.bots`): makers quote near the oracle-implied rate and within what
they hold, takers take the best quote, refusals are logged and passed over, the same seed and prices give
the same run, and the command stops cleanly and says why."""

from __future__ import annotations

import datetime as dt
import random
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal, localcontext
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import domain, services
from markets.bots import Crew, Params, join_bots
from markets.bots.policy import Maker, Market, QuoteView, RfqView, Taker, leg_floor, maker_rate, rfq_size
from markets.models import RFQ, Holding, Participant, Quote, Session, Trade
from oracle.models import Tick
from sessionsite import testing

T0 = dt.datetime(2030, 3, 4, 10, 0, tzinfo=dt.UTC)
LEGS = ("AAPL", "NVDA", "META", "ORCL")
PRICES = {"AAPL": 230_000_000, "NVDA": 135_000_000, "META": 600_000_000, "ORCL": 170_000_000}
EAGER = Params(rfq_chance_pct=100, accept_chance_pct=100)


def tick_all(session_id: str, at: dt.datetime, prices: dict[str, int] = PRICES) -> None:
    Tick.objects.bulk_create(
        Tick(session_id=session_id, symbol=leg, at=at, price=price, source="replay:test")
        for leg, price in prices.items()
    )


def replay_prices(step: int) -> dict[str, int]:
    """A fixed price path (the same in every run): each leg wanders by whole cents."""
    return {leg: base + ((step * (7 + 3 * k)) % 23 - 11) * 250_000 for k, (leg, base) in enumerate(PRICES.items())}


def bot_session(users, sid: str, makers: int, takers: int, *, humans: bool = True) -> Session:
    """A session with the bots joined before it opens (and alice, bob, mm, mm2 when `humans`)."""
    if humans:
        create_demo(users, sid, open_it=False)
    else:
        services.create_session(users["org"], session_id=sid, legs=list(LEGS), q=[100, 60, 80, 120])
    join_bots(sid, makers, takers)
    return services.open_session(users["org"], sid)


def held(sid: str, name: str) -> dict[str, int]:
    rows = Holding.objects.filter(session_id=sid, participant__username=name).values_list("leg", "qty")
    return dict(rows)


def all_holdings(sid: str) -> dict[str, dict[str, int]]:
    names = Participant.objects.filter(session_id=sid).values_list("username", flat=True)
    return {name: held(sid, name) for name in names}


# ---------------------------------------------------------------- the decisions, pure


def _rfqs(draw, taker_names: list[str]) -> list[RfqView]:
    rfqs = []
    for i in range(draw(st.integers(0, 6))):
        give, get = draw(st.lists(st.sampled_from(LEGS), min_size=2, max_size=2, unique=True))
        qty = draw(st.integers(1, 10**12))
        rfqs.append(RfqView(i + 1, draw(st.sampled_from(taker_names)), give, get, qty, T0))
    return rfqs


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_makers_quote_within_their_spread_of_the_implied_rate_and_never_beyond_what_they_hold(data):
    me = "bot-maker-1"
    params = Params()
    prices = {leg: data.draw(st.integers(1, domain.MAX_PRICE * domain.PRICE_SCALE)) for leg in LEGS}
    holding = {leg: data.draw(st.integers(0, 10**13)) for leg in LEGS}
    initial = {leg: data.draw(st.integers(0, 10**13)) for leg in LEGS}
    rfqs = _rfqs(data.draw, ["bot-taker-1", "alice", me])
    quotes = [
        QuoteView(100 + r.id, r.id, me, data.draw(st.integers(1, 10**14)), T0 + dt.timedelta(seconds=30))
        for r in rfqs
        if r.taker != me and data.draw(st.booleans())
    ]
    market = Market(LEGS, prices, tuple(rfqs), tuple(quotes), {me: holding}, {me: initial})
    intents = Maker(me, params).plan(market, random.Random(data.draw(st.integers(0, 2**32))))

    by_id = {r.id: r for r in rfqs}
    withdrawn = {i.ref for i in intents if i.kind == "withdraw"}
    promised = dict.fromkeys(LEGS, 0)
    for quote in quotes:
        rfq = by_id[quote.rfq_id]
        fair_floor = maker_rate(prices[rfq.give_leg], prices[rfq.get_leg], 0)
        assert (quote.id in withdrawn) == (quote.rate > fair_floor), "withdraw exactly the quotes above the rate"
        if quote.id not in withdrawn:
            promised[rfq.get_leg] += domain.trade_receive(rfq.quantity, quote.rate)
    already = {q.rfq_id for q in quotes}
    with localcontext() as ctx:
        ctx.prec = 80
        for intent in (i for i in intents if i.kind == "quote"):
            rfq = by_id[intent.ref]
            assert rfq.taker != me and rfq.id not in already, "one live quote per RFQ, never on its own"
            fair = Decimal(prices[rfq.give_leg]) / Decimal(prices[rfq.get_leg])
            rate = Decimal(intent.rate) / domain.RATE_SCALE
            tick = Decimal(1) / domain.RATE_SCALE
            assert fair * (1 - Decimal(params.spread_max_bps) / 10_000) - tick < rate
            assert rate <= fair * (1 - Decimal(params.spread_min_bps) / 10_000) <= fair
            assert intent.ttl == params.quote_ttl
            promised[rfq.get_leg] += domain.trade_receive(rfq.quantity, intent.rate)
    for leg in LEGS:
        new = [i for i in intents if i.kind == "quote" and i.get_leg == leg]
        if new:  # what its live quotes promise stays within what it holds above its floor
            assert promised[leg] <= holding[leg] - leg_floor(initial[leg], params.floor_pct)


def test_a_maker_quotes_what_it_can_and_skips_what_it_cannot_deliver():
    me = "bot-maker-1"
    small = RfqView(1, "alice", "AAPL", "NVDA", 10 * domain.QTY_SCALE, T0)  # ~17 NVDA
    big = RfqView(2, "bob", "AAPL", "NVDA", 100 * domain.QTY_SCALE, T0)  # ~170 NVDA: more than it holds
    market = Market(
        LEGS, PRICES, (small, big), (), {me: {"NVDA": 30 * domain.QTY_SCALE}}, {me: {"NVDA": 30 * domain.QTY_SCALE}}
    )
    intents = Maker(me, Params(spread_min_bps=50, spread_max_bps=50)).plan(market, random.Random(1))
    assert [(i.kind, i.ref) for i in intents] == [("quote", 1)]
    assert intents[0].rate == 230 * domain.RATE_SCALE * 9950 // (135 * 10_000)
    # The floor counts: holding only a little above 20% of its start, it quotes nothing.
    starved = Market(
        LEGS, PRICES, (small,), (), {me: {"NVDA": 18 * domain.QTY_SCALE}}, {me: {"NVDA": 10 * domain.QTY_SCALE}}
    )
    assert Maker(me, Params()).plan(starved, random.Random(1)) == []


def test_a_taker_accepts_the_quote_giving_it_most_skips_refused_ones_and_cancels_stale_rfqs():
    me = "bot-taker-1"
    mine = RfqView(7, me, "AAPL", "NVDA", 5 * domain.QTY_SCALE, T0)
    later = T0 + dt.timedelta(seconds=60)
    quotes = tuple(
        QuoteView(qid, 7, maker, rate, later)
        for qid, maker, rate in ((11, "mm", 160_000_000), (12, "mm2", 169_000_000), (13, "bot-maker-1", 169_000_000))
    )
    market = Market(LEGS, PRICES, (mine,), quotes, {me: {"AAPL": 10**7}}, {me: {"AAPL": 10**7}})
    taker = Taker(me, EAGER)
    [accept] = taker.plan(market, random.Random(3), T0 + dt.timedelta(seconds=1))
    assert (accept.kind, accept.ref, accept.rate) == ("accept", 12, 169_000_000)  # best rate, earliest of equals
    taker.refused.add(12)
    assert taker.plan(market, random.Random(3), T0)[0].ref == 13
    # Letting it go: no accept, and no second RFQ while this one is open.
    assert Taker(me, Params(accept_chance_pct=0, rfq_chance_pct=100)).plan(market, random.Random(3), T0) == []
    # Open for stale_seconds: cancelled, quotes or not.
    [cancel] = taker.plan(market, random.Random(3), T0 + dt.timedelta(seconds=EAGER.stale_seconds))
    assert (cancel.kind, cancel.ref) == ("cancel", 7)


@given(held_units=st.integers(0, 10**15), pct=st.integers(1, 100))
def test_rfq_sizes_are_a_fraction_of_the_holding_in_hundredths(held_units, pct):
    size = rfq_size(held_units, pct)
    assert 0 <= size <= held_units * pct // 100 and size % 10**4 == 0
    assert held_units * pct // 100 - size < 10**4


# ---------------------------------------------------------------- through the services


@pytest.mark.django_db
def test_bots_are_participants_without_a_password_or_staff_rights(users):
    bot_session(users, "b", 2, 3)
    joined = dict(
        Participant.objects.filter(session_id="b", username__startswith="bot-").values_list("username", "role")
    )
    assert joined == {
        "bot-maker-1": "maker",
        "bot-maker-2": "maker",
        "bot-taker-1": "trader",
        "bot-taker-2": "trader",
        "bot-taker-3": "trader",
    }
    for user in get_user_model().objects.filter(username__startswith="bot-"):
        assert not user.has_usable_password() and not user.is_staff and not user.is_superuser
    assert all(any(held("b", name).values()) for name in joined)  # they hold their share
    payloads = [e.payload for e in Event.objects.filter(stream="session-b", type="ParticipantJoined")]
    assert all('"user_id"' in p for p in payloads)


@pytest.mark.django_db
def test_makers_quote_a_persons_rfq_near_the_implied_rate_through_the_services(users):
    bot_session(users, "mk", 2, 0)
    tick_all("mk", T0)
    rfq = services.request_rfq(users["alice"], "mk", "AAPL", "NVDA", "4")  # ~6.8 NVDA of 10 (8 above the floor)
    too_big = services.request_rfq(users["bob"], "mk", "ORCL", "NVDA", "19")  # ~24 NVDA: beyond any maker
    actions = Crew("mk", 2, 0, seed=1).step(clock.now())
    assert [(a.intent.bot, a.intent.kind, a.outcome) for a in actions] == [
        ("bot-maker-1", "quote", "ok"),
        ("bot-maker-2", "quote", "ok"),
    ]
    fair = Decimal(PRICES["AAPL"]) / Decimal(PRICES["NVDA"])
    for quote in Quote.objects.filter(rfq=rfq):
        rate = domain.to_decimal(quote.rate, domain.RATE_DP)
        assert fair * Decimal("0.994") < rate < fair
    assert not Quote.objects.filter(rfq=too_big).exists()
    assert actions[0].line().startswith(f"bot-maker-1 quote rfq {rfq.id} (4 AAPL -> NVDA) at ")


@pytest.mark.django_db
def test_a_taker_bot_asks_then_accepts_the_best_live_quote(users):
    bot_session(users, "tk", 0, 1)
    tick_all("tk", T0)
    crew = Crew("tk", 0, 1, seed=4, params=EAGER)
    [asked] = crew.step(clock.now())
    assert (asked.intent.kind, asked.outcome) == ("rfq", "ok")
    rfq = RFQ.objects.get(id=asked.made)
    assert rfq.taker.username == "bot-taker-1"
    fair = domain.trade_receive(domain.RATE_SCALE, maker_rate(PRICES[rfq.give_leg], PRICES[rfq.get_leg], 0))
    low = services.provide_quote(users["mm"], rfq.id, domain.rate_str(fair * 95 // 100), 60)
    best = services.provide_quote(users["mm2"], rfq.id, domain.rate_str(fair * 99 // 100), 60)
    [accepted] = crew.step(clock.now())
    assert (accepted.intent.kind, accepted.intent.ref, accepted.outcome) == ("accept", best.id, "ok")
    trade = Trade.objects.get(id=accepted.made)
    assert (trade.quote_id, trade.maker.username, trade.taker.username) == (best.id, "mm2", "bot-taker-1")
    assert Quote.objects.get(id=low.id).status == Quote.Status.LAPSED
    assert (crew.actions, crew.trades, crew.refusals) == (2, 1, 0)


@pytest.mark.django_db
def test_a_refusal_is_logged_in_one_line_and_the_bots_go_on(users):
    """The best quote's maker has since traded its inventory away: the accept is refused by the services
    (nothing written), the bot says so in one line, and next step takes the next best quote."""
    bot_session(users, "rf", 0, 1)
    tick_all("rf", T0)
    crew = Crew("rf", 0, 1, seed=2, params=EAGER)
    [asked] = crew.step(clock.now())
    rfq = RFQ.objects.get(id=asked.made)
    mm_has = held("rf", "mm")[rfq.get_leg]
    greedy = services.provide_quote(
        users["mm"], rfq.id, domain.rate_str(mm_has * domain.RATE_SCALE // rfq.quantity), 60
    )
    modest = services.provide_quote(users["mm2"], rfq.id, "0.001", 60)
    # mm gives all of that leg away to mm2 for a little of another.
    other = next(leg for leg in LEGS if leg not in (rfq.get_leg,))
    away = services.request_rfq(users["mm"], "rf", rfq.get_leg, other, domain.qty_str(mm_has))
    services.accept_quote(users["mm"], services.provide_quote(users["mm2"], away.id, "0.0001", 60).id)
    events = Event.objects.count()

    [refused] = crew.step(clock.now())
    assert (refused.intent.ref, refused.outcome) == (greedy.id, "insufficient_inventory")
    line = refused.line()
    assert line.startswith("refused: bot-taker-1 accept quote") and "the maker holds 0.000000" in line
    assert "\n" not in line and "Traceback" not in line
    assert Event.objects.count() == events and not Trade.objects.filter(quote=greedy).exists()

    [taken] = crew.step(clock.now())
    assert (taken.intent.ref, taken.outcome) == (modest.id, "ok")
    assert (crew.trades, crew.refusals) == (1, 1)


def _run(sid: str, users, seed: int, steps: int = 25) -> tuple[list[tuple], dict]:
    with clock.frozen(T0):
        bot_session(users, sid, 2, 3, humans=False)
        crew = Crew(sid, 2, 3, seed=seed)
        keys = []
        for step in range(steps):
            tick_all(sid, clock.now(), replay_prices(step))
            keys += [a.key() for a in crew.step(clock.now())]
            clock.advance(1)
    return keys, all_holdings(sid)


@pytest.mark.django_db
def test_the_same_seed_and_prices_give_the_same_actions_and_holdings(users):
    first, holdings = _run("det-a", users, seed=7)
    again, holdings_again = _run("det-b", users, seed=7)
    assert first == again and holdings == holdings_again
    kinds = {key[1] for key in first}
    assert {"rfq", "quote", "accept"} <= kinds, kinds
    assert Trade.objects.filter(session_id="det-a").count() == sum(
        1 for k in first if k[1] == "accept" and k[-1] == "ok"
    )
    other, other_holdings = _run("det-c", users, seed=8)
    assert other != first and other_holdings != holdings


# ---------------------------------------------------------------- the command


def run_bots(*args: str) -> str:
    out = StringIO()
    call_command("run_bots", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_run_bots_joins_a_created_session_waits_for_it_to_open_and_opens_it_when_asked(users):
    create_demo(users, "c", open_it=False)
    out = run_bots("--session", "c", "--makers", "1", "--takers", "1", "--steps", "1", "--interval", "0.01")
    assert "joined bot-maker-1, bot-taker-1 to session c" in out
    assert "session c is not open yet: its organiser opens it from the floor" in out
    assert "waiting for session c to open" in out
    assert out.strip().splitlines()[-1].startswith("bots stopped (--steps 1 reached): 0 actions, 0 trades, 0 refusals")
    assert Session.objects.get(id="c").status == Session.Status.CREATED
    assert Participant.objects.filter(session_id="c", username__startswith="bot-").count() == 2

    tick_all("c", clock.now())
    args = ("--session", "c", "--makers", "1", "--takers", "1", "--steps", "3", "--interval", "0.01", "--seed", "1")
    out = run_bots(*args, "--open")
    assert "opened session c" in out and "joined" not in out
    assert Session.objects.get(id="c").status == Session.Status.OPEN
    assert any(held("c", "bot-maker-1").values()) and any(held("c", "bot-taker-1").values())
    assert "bot-taker-1 rfq " in out and "bot-maker-1 quote rfq " in out, out


@pytest.mark.django_db
def test_run_bots_stops_by_itself_when_trading_closes(users):
    clock.set_time(None)
    t2 = clock.now() + dt.timedelta(seconds=3)
    create_demo(users, "tm", open_it=False, end_mode="timed", t2=t2)
    join_bots("tm", 1, 1)
    services.open_session(users["org"], "tm")
    tick_all("tm", clock.now())
    out = run_bots("--session", "tm", "--makers", "1", "--takers", "1", "--interval", "0.2", "--seed", "3")
    assert f"bots stopped (trading in session tm closed at t2 ({domain.when(t2)}))" in out.strip().splitlines()[-1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--makers", "x"], "--makers 'x': must be a whole number from 0 to 20"),
        (["--makers", "21"], "--makers '21': must be a whole number from 0 to 20"),
        (["--takers", "-1"], "--takers '-1': must be a whole number from 0 to 50"),
        (["--takers", "٣"], "--takers '٣': must be a whole number from 0 to 50"),
        (["--makers", "0", "--takers", "0"], "no bots to run"),
        (["--interval", "0"], "--interval '0': must be a number of seconds from 0.01 to 3600"),
        (["--interval", "1e-300"], "--interval '1e-300': must be a number of seconds from 0.01 to 3600"),
        (["--interval", "nan"], "--interval 'nan': must be a number of seconds from 0.01"),
        (["--interval", "soon"], "--interval 'soon': must be a number of seconds from 0.01"),
        (["--steps", "0"], "--steps '0': must be a whole number from 1 to"),
        (["--seed", "1.5"], "--seed '1.5': must be a whole number from 0 to"),
    ],
)
def test_run_bots_refuses_bad_numbers_in_one_line_and_writes_nothing(users, args, message):
    create_demo(users, "c", open_it=False)
    events, people = Event.objects.count(), get_user_model().objects.count()
    with pytest.raises(CommandError) as info:
        run_bots("--session", "c", *args)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert (Event.objects.count(), get_user_model().objects.count()) == (events, people)


@pytest.mark.django_db
def test_run_bots_refuses_unknown_settled_and_open_sessions_without_its_bots(users):
    with pytest.raises(CommandError, match=r"^name the session the bots trade in: run_bots --session ID$"):
        run_bots()
    with pytest.raises(CommandError, match=r"^unknown session 'nope'$"):
        run_bots("--session", "nope")
    with pytest.raises(CommandError, match=r"^unknown session"):
        run_bots("--session", "bad id; drop")
    create_demo(users, "demo")
    events = Event.objects.count()
    with pytest.raises(CommandError) as info:
        run_bots("--session", "demo", "--makers", "2", "--takers", "3")
    text = str(info.value)
    assert text.startswith("session demo is already open and bot-maker-1, bot-maker-2, bot-taker-1")
    assert "create a new session" in text and "./start-demo.sh --reset --bots" in text and "\n" not in text
    assert Event.objects.count() == events
    services.settle_session(users["org"], "demo", prices=dict.fromkeys(LEGS, "1"))
    with pytest.raises(CommandError, match=r"^session demo is settled: nothing to trade$"):
        run_bots("--session", "demo")


@pytest.mark.django_db
def test_run_bots_takes_an_open_session_that_has_its_bots_and_fewer_of_them(users):
    bot_session(users, "b", 2, 3)
    tick_all("b", clock.now())
    out = run_bots("--session", "b", "--makers", "1", "--takers", "2", "--steps", "2", "--interval", "0.01")
    assert out.startswith("bots seed=") and "1 makers, 2 takers in session b" in out
    with pytest.raises(CommandError, match="bot-taker-4 did not join it"):
        run_bots("--session", "b", "--takers", "4")


# ---------------------------------------------------------------- the demo's bots


@pytest.mark.django_db
def test_seed_demo_joins_bots_only_to_the_session_it_creates():
    out = StringIO()
    call_command("seed_demo", "--bots", "2,3", stdout=out)
    assert "bots ready: 2 makers, 3 takers in session demo" in out.getvalue()
    assert Participant.objects.filter(session_id="demo", username__startswith="bot-").count() == 5
    assert RFQ.objects.filter(session_id="demo").count() == 2  # the seeded RFQs, sized to the smaller shares
    assert Quote.objects.filter(rfq__session_id="demo").count() == 2
    again = StringIO()
    call_command("seed_demo", "--bots", "2,3", stdout=again)
    assert "bots ready" in again.getvalue() and RFQ.objects.filter(session_id="demo").count() == 2

    call_command("seed_demo", "--session-id", "plain", stdout=StringIO())
    late = StringIO()
    call_command("seed_demo", "--session-id", "plain", "--bots", "1,1", stdout=late)
    assert "bots not added: session plain opened without them" in late.getvalue()
    assert "./start-demo.sh --reset --bots" in late.getvalue()
    assert not Participant.objects.filter(session_id="plain", username__startswith="bot-").exists()
    for bad in ("2", "a,b", "2,3,4", "0,0", "99,1"):
        with pytest.raises(CommandError, match=r"^--bots"):
            call_command("seed_demo", "--bots", bad, stdout=StringIO())


# ---------------------------------------------------------------- a real process


def bots_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_bots", *args],
        cwd=testing.BASE_DIR,
        env=testing.child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_trades(proc: subprocess.Popen, sid: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while Trade.objects.filter(session_id=sid).count() < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the bots made no trade"
        time.sleep(0.1)


SUMMARY = re.compile(r"bots stopped \((.+)\): (\d+) actions, (\d+) trades, (\d+) refusals in [0-9.]+s \(seed 5\)")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_stops_a_running_process_after_its_current_action_and_the_ledger_verifies(users):
    bot_session(users, "live", 2, 3)
    tick_all("live", clock.now())
    proc = bots_process("--session", "live", "--makers", "2", "--takers", "3", "--seed", "5", "--interval", "0.2")
    try:
        wait_for_trades(proc, "live", 2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.startswith("bots seed=5: 2 makers, 3 takers in session live, a step every 0.2s.")
    summary = SUMMARY.fullmatch(out.strip().splitlines()[-1])
    assert summary and summary.group(1) == "SIGINT", out
    trades = Trade.objects.filter(session_id="live")
    assert int(summary.group(3)) == trades.count() >= 2
    assert set(trades.values_list("taker__username", flat=True)) <= {f"bot-taker-{i}" for i in (1, 2, 3)}
    assert "Traceback" not in err
    verified = subprocess.run(
        [sys.executable, "manage.py", "verify_ledger", "live"],
        cwd=testing.BASE_DIR,
        env=testing.child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "live:" in verified.stdout and "ok" in verified.stdout


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_running_process_stops_by_itself_when_the_session_settles(users):
    bot_session(users, "ends", 1, 2)
    tick_all("ends", clock.now())
    proc = bots_process("--session", "ends", "--makers", "1", "--takers", "2", "--seed", "5", "--interval", "0.2")
    try:
        wait_for_trades(proc, "ends", 1)
        services.settle_session(users["org"], "ends", prices={leg: domain.price_str(p) for leg, p in PRICES.items()})
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    summary = SUMMARY.fullmatch(out.strip().splitlines()[-1])
    assert summary and summary.group(1) == "session ends is settled", out


def test_a_taker_asks_for_no_more_than_half_of_what_the_best_stocked_maker_holds():
    """Pro rata among eight, a maker holds little of each leg: a taker that asked for more than a maker
    could pay would wait for quotes that never come (a demo with no trade for its first minute)."""
    me = "bot-taker-1"
    held = {leg: 50 * domain.QTY_SCALE for leg in LEGS}
    thin = {"AAPL": 4 * domain.QTY_SCALE, "NVDA": 4 * domain.QTY_SCALE, "META": 0, "ORCL": 4 * domain.QTY_SCALE}
    market = Market(LEGS, PRICES, (), (), {me: held}, {me: held}, thin)
    params = Params(rfq_chance_pct=100, size_min_pct=30, size_max_pct=30)
    asked = [Taker(me, params).plan(market, random.Random(seed), T0) for seed in range(40)]
    rfqs = [i for intents in asked for i in intents if i.kind == "rfq"]
    assert rfqs and all(i.get_leg != "META" for i in rfqs)  # no maker holds any META
    for i in rfqs:
        paid = domain.trade_receive(i.quantity, maker_rate(PRICES[i.give_leg], PRICES[i.get_leg], 0))
        assert 0 < paid <= thin[i.get_leg] // 2
    # Not knowing the makers (an empty view), it asks 30% of what it holds.
    blind = Taker(me, params).plan(Market(LEGS, PRICES, (), (), {me: held}, {me: held}), random.Random(1), T0)
    assert [i.quantity for i in blind] == [15 * domain.QTY_SCALE]
