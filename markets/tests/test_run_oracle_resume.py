"""run_oracle started again continues each leg from the session's newest stored tick (in-process, on the
fake clock of test_run_oracle; the real processes killed and restarted are in test_run_oracle_process)."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import services
from markets.management.commands.run_oracle import Command
from markets.models import Session
from markets.tests.test_run_oracle import CSV, T0, FakeTime, prices_of, run, write_csv
from oracle.models import Tick
from oracle.sources import SimSource, load_config, price_text
from oracle.tests.test_sources import DEFAULT_CONFIG, LEGS

START = {"AAPL": 230_000_000, "NVDA": 135_000_000, "META": 600_000_000, "ORCL": 170_000_000}
# A walk that runs far from the configured start within a few ticks: a reset would be plain to see.
WILD = ("--vol", "3", "--time-scale", "100000", "--tick-ms", "500")


@pytest.fixture
def fake(monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(Command, "runner_options", {"sleep": fake.sleep, "monotonic": fake.monotonic})
    return fake


def newest(session_id: str, leg: str) -> Tick:
    return Tick.objects.filter(session_id=session_id, symbol=leg).order_by("-at", "-id").first()


def ticks_after(session_id: str, leg: str, tick_id: int) -> list[int]:
    rows = Tick.objects.filter(session_id=session_id, symbol=leg, id__gt=tick_id).order_by("at", "id")
    return list(rows.values_list("price", flat=True))


def later(seconds: float = 5) -> None:
    """A restart takes a while: the clock moves on between the two runs."""
    clock.advance(seconds)


def test_a_restart_continues_every_leg_from_its_newest_tick_and_says_so(users, fake):
    create_demo(users)
    run("--session-id", "demo", "--max-ticks", "6", "--seed", "1", "--quiet", *WILD)
    before = {leg: newest("demo", leg) for leg in LEGS}
    assert all(before[leg].price != START[leg] for leg in LEGS)  # a reset would show the config exactly
    later()
    out = run("--session-id", "demo", "--max-ticks", "4", "--seed", "2", *WILD)
    for leg in LEGS:
        after = ticks_after("demo", leg, before[leg].id)
        assert len(after) == 4
        assert after[0] == before[leg].price  # the exact stored integer, then the walk moves on from it
        assert len(set(after)) > 1
        at = before[leg].at.strftime("%Y-%m-%d %H:%M:%S")
        line = f"resume {leg} at {price_text(before[leg].price)} from tick {before[leg].id} of demo ({at}"
        assert line in out, out
    # the banner comes first, then where each leg starts, before the first tick
    lines = out.splitlines()
    assert lines[0].startswith("oracle sim:seed=2")
    assert [line.split()[1] for line in lines[1:5]] == LEGS


def test_start_overrides_the_resume_for_the_legs_it_names_and_a_bare_start_for_all(users, fake):
    create_demo(users)
    run("--session-id", "demo", "--max-ticks", "5", "--seed", "1", "--quiet", *WILD)
    before = {leg: newest("demo", leg) for leg in LEGS}
    later()
    out = run("--session-id", "demo", "--max-ticks", "1", "--seed", "2", "--start", "aapl=10.5", *WILD)
    assert newest("demo", "AAPL").price == 10_500_000
    assert "start AAPL at 10.50 from --start for demo" in out
    for leg in ("NVDA", "META", "ORCL"):
        assert newest("demo", leg).price == before[leg].price
    later()
    run("--session-id", "demo", "--max-ticks", "1", "--seed", "2", "--start", "7", "--quiet", *WILD)
    assert {leg: newest("demo", leg).price for leg in LEGS} == dict.fromkeys(LEGS, 7_000_000)


def test_sessions_priced_apart_each_continue_from_their_own_price_and_a_new_one_joins_the_newest(users, fake):
    create_demo(users, "one")
    create_demo(users, "two")
    create_demo(users, "done", legs=["AAPL", "TSLA"], q=[1, 1])
    run("--session-id", "one", "--max-ticks", "5", "--seed", "1", "--quiet", *WILD)
    later()
    run("--session-id", "two", "--max-ticks", "5", "--seed", "2", "--quiet", *WILD)
    services.settle_session(users["org"], "done", prices={"AAPL": "1", "TSLA": "2"})
    create_demo(users, "new", legs=["AAPL", "TSLA"], q=[1, 1])
    one, two = ({leg: newest(s, leg) for leg in LEGS} for s in ("one", "two"))
    assert all(one[leg].price != two[leg].price for leg in LEGS)
    later()
    out = run("--all", "--max-ticks", "8", "--seed", "3", *WILD)

    for leg in LEGS:
        a, b = ticks_after("one", leg, one[leg].id), ticks_after("two", leg, two[leg].id)
        assert (a[0], b[0]) == (one[leg].price, two[leg].price)  # each from its own newest tick
        for x, y in itertools.pairwise(zip(a, b, strict=True)):  # the same shocks: the same returns
            assert x[0] / y[0] == pytest.approx(x[1] / y[1], rel=1e-3)
    # the newest AAPL was two's: the walk resumes there, and `new` (no tick yet) joins it at that price
    new_aapl = prices_of("new", "AAPL")
    assert new_aapl == ticks_after("two", "AAPL", two["AAPL"].id)
    assert prices_of("new", "TSLA")[0] == 100_000_000  # no tick of TSLA anywhere: the config
    assert f"resume AAPL at {price_text(two['AAPL'].price)} from tick {two['AAPL'].id} of two" in out
    assert "for two; no tick yet: new" in out
    assert f"resume AAPL at {price_text(one['AAPL'].price)} from tick {one['AAPL'].id} of one" in out
    assert "start TSLA at 100.00 from the config (no tick yet) for new" in out
    assert not Tick.objects.filter(session_id="done").exists()  # settled: never priced again


def test_a_session_joining_while_running_with_ticks_of_its_own_continues_from_them(users, fake):
    """Another writer priced it (a second oracle, or one stopped and started again): its own level holds."""
    create_demo(users)
    mine: list[Tick] = []

    def create_later(now):
        if now >= T0 + dt.timedelta(seconds=2) and not mine:
            create_demo(users, "late", legs=["AAPL", "GOLD"], q=[1, 1])
            mine.append(Tick.objects.create(session_id="late", symbol="AAPL", at=now, price=50_000_000, source="x"))

    fake.hooks.append(create_later)
    out = run("--all", "--max-ticks", "12", "--seed", "4", *WILD)
    late_aapl = ticks_after("late", "AAPL", mine[0].id)
    assert late_aapl[0] == 50_000_000 and len(set(late_aapl)) > 1
    assert prices_of("late", "GOLD")[0] == 100_000_000
    assert f"sim: resume AAPL at 50.00 from tick {mine[0].id} of late" in out
    assert "sim: added GOLD for session late" in out


def test_a_seeded_restart_repeats_a_fresh_seeded_walk_from_the_stored_prices(users, fake):
    """What docs/operations.md promises: same seed + same starting point = same ticks, across a restart too."""
    create_demo(users)
    run("--session-id", "demo", "--max-ticks", "5", "--seed", "1", "--quiet", *WILD)
    before = {leg: newest("demo", leg) for leg in LEGS}
    later()
    run("--session-id", "demo", "--max-ticks", "6", "--seed", "8", "--quiet", *WILD)
    config = load_config(DEFAULT_CONFIG).with_overrides(vol={"*": 3.0}, time_scale=100000, legs=LEGS)
    sim = SimSource(LEGS, config, seed=8, tick_seconds=0.5)
    for leg in LEGS:
        sim.set_start(leg, before[leg].price)
    expected = list(itertools.islice(sim, 6))
    for leg in LEGS:
        assert ticks_after("demo", leg, before[leg].id) == [row[leg] for row in expected]


def test_a_timed_session_settles_after_a_restart_on_the_continued_prices(users, fake):
    """The issue's symptom: the settlement a minute after a restart used the configured prices."""
    t2 = T0 + dt.timedelta(seconds=60)
    create_demo(users, "timed", end_mode="timed", t2=t2)
    run("--session-id", "timed", "--max-ticks", "20", "--seed", "1", "--quiet", *WILD)  # 10 s of ticks
    before = {leg: newest("timed", leg).price for leg in LEGS}
    assert all(before[leg] != START[leg] for leg in LEGS)
    later(20)
    # a still walk after the restart: every tick up to t2 is the resumed price, so the fixing must be it
    out = run("--session-id", "timed", "--seed", "2", "--vol", "0", "--drift", "0", "--max-ticks", "500")
    assert "scheduler: timed settled" in out
    session = Session.objects.get(id="timed")
    assert session.status == "settled"
    assert session.settlement.prices == before
    event = Event.objects.get(stream="session-timed", type="SessionSettled")
    assert event.data["prices"] == before
    assert dt.datetime.fromisoformat(event.data["fixing"]["at"]) == t2


def test_a_replay_starts_again_at_its_first_row_and_says_so(users, fake, tmp_path):
    create_demo(users)
    path = write_csv(tmp_path, CSV)
    run("--session-id", "demo", "--mode", "replay", "--csv", str(path), "--max-ticks", "3", "--quiet")
    later()
    out = run("--session-id", "demo", "--mode", "replay", "--csv", str(path), "--max-ticks", "2")
    assert prices_of("demo", "AAPL") == [230_010_000, 230_020_000, 230_030_000, 230_010_000, 230_020_000]
    assert re.search(r"^oracle replay:prices\.csv: .*from row 1 \(a replay starts at the top of its file", out, re.M)
    assert not re.search(r"^(sim: )?(resume|start) ", out, re.M)


def test_a_symbol_walks_on_after_its_sessions_settle_and_a_later_session_joins_it_where_it_is(users, fake):
    create_demo(users)
    joined: list[str] = []

    def settle_then_create(now):
        if now >= T0 + dt.timedelta(seconds=3) and not joined:
            services.settle_session(users["org"], "demo", prices=dict.fromkeys(LEGS, "1"))
            joined.append(create_demo(users, "late", legs=["AAPL", "GOLD"], q=[1, 1]).id)

    fake.hooks.append(settle_then_create)
    out = run("--all", "--max-ticks", "16", "--seed", "4", *WILD)
    late = prices_of("late", "AAPL")
    assert late and late[0] != START["AAPL"]  # where the walk had got to, not a fresh start from the config
    assert "start AAPL" not in out.split("ticks 1 |")[1]
    assert "sim: start GOLD at 100.00 from the config (no tick yet) for late" in out
