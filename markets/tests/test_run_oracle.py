"""run_oracle in-process: ticks stored, replay validation, the scheduler on a frozen clock. No real sleeping:
the command's Runner gets a fake sleep that moves a fake monotonic clock and the frozen ledger.clock."""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets.management.commands.run_oracle import Command, market_runner
from markets.models import Session
from oracle.models import Tick
from oracle.sources import SimSource, load_config, sim_feed
from oracle.tests.test_sources import BAD_FILES, DEFAULT_CONFIG, LEGS

T0 = dt.datetime(2030, 1, 7, 14, 30, tzinfo=dt.UTC)


class FakeTime:
    """sleep() advances a fake monotonic clock and the frozen ledger clock together."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.mono = 1000.0
        self.slept: list[float] = []
        self.hooks: list = []  # called after each sleep with the new ledger time
        clock.set_time(start)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.mono += seconds
        clock.advance(seconds)
        for hook in self.hooks:
            hook(clock.now())

    def monotonic(self) -> float:
        return self.mono


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The shared `users` fixture hashes six passwords; the default hasher makes that seconds per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fake(monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(Command, "runner_options", {"sleep": fake.sleep, "monotonic": fake.monotonic})
    return fake


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("run_oracle", *args, stdout=out)
    return out.getvalue()


def prices_of(session_id: str, leg: str) -> list[int]:
    return list(
        Tick.objects.filter(session_id=session_id, symbol=leg).order_by("at", "id").values_list("price", flat=True)
    )


# ---------------------------------------------------------------- sim


def test_max_ticks_stores_n_ticks_per_leg_with_the_source(users, fake):
    create_demo(users)
    out = run("--session-id", "demo", "--max-ticks", "7", "--seed", "42", "--tick-ms", "250")
    for leg in LEGS:
        ticks = list(Tick.objects.filter(session_id="demo", symbol=leg).order_by("id"))
        assert len(ticks) == 7
        assert {t.source for t in ticks} == {"sim:seed=42"}
        assert all(isinstance(t.price, int) and t.price > 0 for t in ticks)
        assert [t.at - T0 for t in ticks] == [dt.timedelta(milliseconds=250 * i) for i in range(7)]
    assert prices_of("demo", "AAPL")[0] == 230_000_000  # the configured start
    assert Tick.objects.count() == 7 * len(LEGS)
    assert fake.slept == pytest.approx([0.25] * 6)  # paced by --tick-ms, never slept for real
    assert "oracle sim:seed=42" in out
    assert "oracle stopped (--max-ticks 7 reached): 7 ticks, 28 prices stored" in out
    assert not Event.objects.filter(type__icontains="tick").exists()  # ticks are not ledger events


def test_the_same_seed_stores_the_same_prices(users, fake):
    create_demo(users, "one")
    create_demo(users, "two")
    create_demo(users, "three")
    run("--session-id", "one", "--max-ticks", "30", "--seed", "9", "--quiet")
    run("--session-id", "two", "--max-ticks", "30", "--seed", "9", "--quiet")
    run("--session-id", "three", "--max-ticks", "30", "--seed", "10", "--quiet")
    for leg in LEGS:
        assert prices_of("one", leg) == prices_of("two", leg)
        assert prices_of("one", leg)[1:] != prices_of("three", leg)[1:]


def test_sim_flags_override_the_config(users, fake):
    create_demo(users)
    out = run(
        "--session-id", "demo", "--max-ticks", "3", "--seed", "1", "--quiet",
        "--start", "AAPL=10.5", "--vol", "0", "--drift", "0", "--correlation", "0.2", "--time-scale", "1",
    )  # fmt: skip
    assert prices_of("demo", "AAPL") == [10_500_000] * 3
    assert prices_of("demo", "NVDA") == [135_000_000] * 3
    assert "3 ticks" in out


def test_all_prices_created_and_open_sessions_but_not_settled_ones(users, fake):
    create_demo(users, "open1")
    create_demo(users, "created1", open_it=False)
    create_demo(users, "done", legs=["AAPL", "TSLA"], q=[1, 1])
    from markets import services

    services.settle_session(users["org"], "done", prices={"AAPL": "1", "TSLA": "2"})
    run("--all", "--max-ticks", "2", "--seed", "1", "--quiet")
    assert set(Tick.objects.values_list("session_id", flat=True)) == {"open1", "created1"}
    assert Tick.objects.filter(session_id="created1").count() == 2 * len(LEGS)


def test_a_session_created_while_running_with_all_joins_with_its_new_legs(users, fake):
    create_demo(users)
    added = []

    def create_later(now):
        if now >= T0 + dt.timedelta(seconds=3) and not added:
            added.append(create_demo(users, "late", legs=["AAPL", "TSLA"], q=[1, 2]))

    fake.hooks.append(create_later)
    out = run("--all", "--max-ticks", "12", "--seed", "4", "--tick-ms", "500")
    late = Tick.objects.filter(session_id="late")
    assert set(late.values_list("symbol", flat=True)) == {"AAPL", "TSLA"}
    assert late.filter(symbol="TSLA").order_by("id").first().price == 100_000_000  # the config's default start
    # the same symbol has the same price in every session at the same instant
    for tick in late.filter(symbol="AAPL"):
        assert Tick.objects.get(session_id="demo", symbol="AAPL", at=tick.at).price == tick.price
    assert "sim: added TSLA for session late" in out


# ---------------------------------------------------------------- replay


def write_csv(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


CSV = (
    "ts,AAPL,NVDA,META,ORCL\n"
    "2025-01-02T14:30:00Z,230.01,135.01,600.01,170.01\n"
    "2025-01-02T14:30:02Z,230.02,135.02,600.02,170.02\n"
    "2025-01-02T14:30:03Z,230.03,135.03,600.03,170.03\n"
    "2025-01-02T14:30:07Z,230.04,135.04,600.04,170.04\n"
)


def test_replay_stores_the_rows_in_order_at_the_fixed_tick(users, fake, tmp_path):
    create_demo(users)
    path = write_csv(tmp_path, CSV)
    out = run("--session-id", "demo", "--mode", "replay", "--csv", str(path), "--tick-ms", "100")
    assert prices_of("demo", "AAPL") == [230_010_000, 230_020_000, 230_030_000, 230_040_000]
    assert prices_of("demo", "ORCL") == [170_010_000, 170_020_000, 170_030_000, 170_040_000]
    assert set(Tick.objects.values_list("source", flat=True)) == {"replay:prices.csv"}
    assert fake.slept == pytest.approx([0.1, 0.1, 0.1])
    assert "oracle stopped (end of the replay file): 4 ticks, 16 prices stored" in out


def test_replay_at_twice_the_file_pace_and_looping(users, fake, tmp_path):
    create_demo(users)
    path = write_csv(tmp_path, CSV)
    run("--session-id", "demo", "--mode", "replay", "--csv", str(path), "--speed", "2", "--loop", "--max-ticks", "6")
    assert fake.slept == pytest.approx(
        [1.0, 0.5, 2.0, 1.0, 1.0]
    )  # gaps 2, 1, 4 s halved; the loop restarts after the first gap
    assert prices_of("demo", "NVDA") == [135_010_000, 135_020_000, 135_030_000, 135_040_000, 135_010_000, 135_020_000]
    ats = list(Tick.objects.filter(symbol="NVDA").order_by("id").values_list("at", flat=True))
    assert [(a - T0).total_seconds() for a in ats] == [0, 1, 1.5, 3.5, 4.5, 5.5]  # stamped by the clock


def test_replay_with_all_prices_what_it_can_and_names_each_session_it_skips(users, fake, tmp_path):
    """One session with a leg the file lacks does not stop every other session's prices and schedule."""
    create_demo(users)
    create_demo(users, "tsla", legs=["AAPL", "TSLA"], q=[1, 1])
    path = write_csv(tmp_path, CSV)
    with pytest.raises(CommandError, match=r"prices\.csv:1:6: no column for leg TSLA"):
        run("--session-id", "tsla", "--mode", "replay", "--csv", str(path))  # asked for by name: it must be priced
    fake.hooks.append(
        lambda now: (
            Session.objects.filter(id="late").exists() or create_demo(users, "late", legs=["AAPL", "XYZ"], q=[1, 1])
        )
    )
    out = run("--all", "--mode", "replay", "--csv", str(path), "--tick-ms", "1000")
    assert out.count("warning: session tsla skipped: no prices for TSLA in replay:prices.csv") == 1
    assert "warning: session late skipped: no prices for XYZ in replay:prices.csv" in out
    assert set(Tick.objects.values_list("session_id", flat=True)) == {"demo"}
    assert Tick.objects.count() == 4 * len(LEGS)


def test_the_shipped_demo_file_replays_by_bare_name(users, fake):
    create_demo(users)
    out = run(
        "--session-id", "demo", "--mode", "replay", "--csv", "prices_demo.csv", "--max-ticks", "3", "--speed", "10"
    )
    assert Tick.objects.filter(symbol="META").count() == 3
    assert set(Tick.objects.values_list("source", flat=True)) == {"replay:prices_demo.csv"}
    assert fake.slept == pytest.approx([0.1, 0.1])
    assert "rows at 10x the file's pace" in out


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_malformed_replay_file_is_one_clear_error_and_writes_nothing(users, fake, tmp_path, text, message):
    create_demo(users)
    path = write_csv(tmp_path, text, "broken.csv")
    with pytest.raises(CommandError) as caught:
        run("--session-id", "demo", "--mode", "replay", "--csv", str(path))
    error = str(caught.value)
    assert error.startswith(f"{path}:") and message in error, error
    assert "\n" not in error
    assert Tick.objects.count() == 0


def test_a_bad_row_late_in_the_file_still_writes_nothing(users, fake, tmp_path):
    create_demo(users)
    good = "".join(f"2025-01-02T14:{m:02d}:00Z,1,2,3,4\n" for m in range(50))
    path = write_csv(tmp_path, "ts,AAPL,NVDA,META,ORCL\n" + good + "2025-01-02T15:00:00Z,1,2,3,x\n")
    with pytest.raises(CommandError, match=r"prices\.csv:52:5: ORCL: price must be a number, not 'x'"):
        run("--session-id", "demo", "--mode", "replay", "--csv", str(path))
    assert Tick.objects.count() == 0


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--session-id", "nope"], "unknown session 'nope'"),
        ([], "name the sessions to price with --session-id"),
        (["--all", "--session-id", "demo"], "either --session-id or --all"),
        (["--all", "--speed", "2"], "--speed applies only to --mode replay"),
        (["--all", "--mode", "replay", "--csv", "x.csv", "--seed", "1"], "--seed applies only to --mode sim"),
        (["--all", "--mode", "replay"], "--mode replay needs --csv FILE"),
        (["--all", "--mode", "replay", "--csv", "x.csv", "--speed", "2", "--tick-ms", "5"], "not both"),
        (["--all", "--mode", "replay", "--csv", "missing.csv"], "missing.csv: cannot read"),
        (["--all", "--tick-ms", "0"], "--tick-ms 0"),
        (["--all", "--max-ticks", "0"], "--max-ticks 0"),
        (["--all", "--vol", "AAPL=-1"], "--vol 'AAPL=-1'"),
        (["--all", "--start", "AAPL=abc"], "--start 'AAPL=abc'"),
        (["--all", "--vol", "MSFT\u017f=0.1"], "leg names are ASCII"),  # a long s: upper() made it MSFTS
        (["--all", "--correlation", "0.99", "--start", "AAPL=1"], None),
        (["--all", "--correlation", "1.5"], "--correlation 1.5"),
        (["--all", "--config", "/nonexistent/x.json"], "x.json: cannot read"),
    ],
)
def test_bad_flags_are_one_line_errors(users, fake, args, message):
    create_demo(users)
    if message is None:  # a valid combination, for contrast
        run(*args, "--max-ticks", "1", "--quiet")
        return
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert Tick.objects.count() == 0


def test_a_settled_session_is_refused(users, fake):
    from markets import services

    create_demo(users)
    services.settle_session(users["org"], "demo", prices=dict.fromkeys(LEGS, "1"))
    with pytest.raises(CommandError, match="demo is already settled"):
        run("--session-id", "demo")


def test_sigterm_stops_after_the_current_tick_and_restores_handlers(users, fake):
    create_demo(users)
    before = signal.getsignal(signal.SIGTERM)

    def terminate(now):
        if now >= T0 + dt.timedelta(seconds=2):
            os.kill(os.getpid(), signal.SIGTERM)

    fake.hooks.append(terminate)
    out = run("--session-id", "demo", "--tick-ms", "500", "--seed", "1")
    # the signal arrived during the sleep before tick 5: that tick is not written, the earlier ones are whole
    assert Tick.objects.count() == 4 * len(LEGS)
    assert "oracle stopped (SIGTERM): 4 ticks" in out
    assert signal.getsignal(signal.SIGTERM) is before


# ---------------------------------------------------------------- scheduler


def last_at_or_before(session_id: str, leg: str, at: dt.datetime) -> Tick:
    return Tick.objects.filter(session_id=session_id, symbol=leg, at__lte=at).order_by("-at", "-id").first()


@pytest.mark.parametrize("rule", [{"rule": "last"}, {"rule": "median", "window": 5}])
def test_a_timed_session_opens_at_t1_and_settles_at_t2_with_the_fixing(users, fake, rule):
    t1, t2 = T0 + dt.timedelta(seconds=5), T0 + dt.timedelta(seconds=30)
    create_demo(users, "timed", open_it=False, start_mode="scheduled", t1=t1, end_mode="timed", t2=t2, fixing_rule=rule)
    opened_at = []

    def watch(now):
        if not opened_at and Session.objects.get(id="timed").status == "open":
            opened_at.append(now)

    fake.hooks.append(watch)
    out = run("--session-id", "timed", "--tick-ms", "500", "--seed", "11", "--max-ticks", "500")

    session = Session.objects.get(id="timed")
    assert session.status == "settled"
    assert t1 <= opened_at[0] <= t1 + dt.timedelta(seconds=1.5)  # the scheduler runs at most once a second
    assert Tick.objects.filter(session_id="timed", at__lt=t1).exists()  # priced before it opened
    assert "scheduler: timed opened" in out and "scheduler: timed settled" in out
    assert "oracle stopped (all sessions settled)" in out

    event = Event.objects.get(stream="session-timed", type="SessionSettled")
    fixing = event.data["fixing"]
    assert fixing["source"] == "oracle" and fixing["rule"] == rule
    assert dt.datetime.fromisoformat(fixing["at"]) == t2
    for leg in LEGS:
        if rule["rule"] == "last":
            tick = last_at_or_before("timed", leg, t2)
            assert tick.at == t2  # a tick fell exactly on t2
            expected, used = tick.price, [tick.id]
        else:
            window = Tick.objects.filter(
                session_id="timed", symbol=leg, at__gt=t2 - dt.timedelta(seconds=5), at__lte=t2
            ).order_by("at", "id")
            assert len(window) == 10
            expected = sorted(t.price for t in window)[4]  # even count: the lower middle
            used = [t.id for t in window]
        assert fixing["ticks"][leg] == used
        assert event.data["prices"][leg] == expected
        assert session.settlement.prices[leg] == expected

    verify = io.StringIO()
    call_command("verify_ledger", stdout=verify)
    assert "chain intact, replay matches" in verify.getvalue()


def test_no_tick_for_a_leg_at_t2_leaves_the_session_waiting(users):
    clock.set_time(T0)
    t1, t2 = T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=10)
    create_demo(users, "timed", open_it=False, start_mode="scheduled", t1=t1, end_mode="timed", t2=t2)
    for leg, price in (("AAPL", 230_000_000), ("NVDA", 135_000_000), ("META", 600_000_000)):
        Tick.objects.create(session_id="timed", symbol=leg, at=T0 + dt.timedelta(seconds=2), price=price, source="test")
    lines: list[str] = []
    mono = [0.0]
    runner = market_runner(
        feed=[], source_label="test", session_ids=["timed"], symbols=LEGS, out=lines.append, monotonic=lambda: mono[0]
    )

    clock.set_time(t1 + dt.timedelta(seconds=1))
    runner.scheduler_step()
    assert lines == ["scheduler: timed opened"]
    clock.set_time(t2 + dt.timedelta(seconds=1))
    mono[0] += 1
    runner.scheduler_step()
    session = Session.objects.get(id="timed")
    assert session.status == "closed"
    assert "ORCL" in session.waiting_reason and "AAPL" not in session.waiting_reason
    assert lines[1] == "scheduler: timed trading closed"
    assert lines[2].startswith("scheduler: timed not settled:") and "ORCL" in lines[2]
    assert Event.objects.filter(stream="session-timed", type="SettlementWaiting").count() == 1
    assert Event.objects.filter(stream="session-timed", type="TradingClosed").count() == 1

    mono[0] += 0.5
    assert runner.scheduler_step() == []  # at most once a second
    mono[0] += 1
    runner.scheduler_step()  # still waiting: not reported or recorded again
    assert len(lines) == 3
    assert Event.objects.filter(stream="session-timed", type="SettlementWaiting").count() == 1

    # a late ORCL tick stamped before t2 (e.g. a replayed feed catching up) lets it settle
    Tick.objects.create(
        session_id="timed", symbol="ORCL", at=t2 - dt.timedelta(seconds=1), price=170_000_000, source="test"
    )
    mono[0] += 1
    runner.scheduler_step()
    session = Session.objects.get(id="timed")
    assert session.status == "settled" and session.waiting_reason == ""
    assert lines[-1] == "scheduler: timed settled"
    assert session.settlement.prices == {
        "AAPL": 230_000_000,
        "NVDA": 135_000_000,
        "META": 600_000_000,
        "ORCL": 170_000_000,
    }
    call_command("verify_ledger", stdout=io.StringIO())


def test_the_runner_is_usable_without_the_command(users):
    """The loop around a SimSource directly, with an injected clock: what benchmarks and tools reuse."""
    create_demo(users)
    fake = FakeTime()
    sim = SimSource(LEGS, load_config(DEFAULT_CONFIG), seed=3, tick_seconds=0.1)
    progress: list[str] = []
    said: list[str] = []
    runner = market_runner(
        feed=sim_feed(sim, 0.1), source_label="sim:seed=3", session_ids=["demo"], symbols=LEGS, sim=sim,
        out=said.append, progress=progress.append, progress_every=0.5, max_ticks=20,
        sleep=fake.sleep, monotonic=fake.monotonic,
    )  # fmt: skip
    summary = runner.run()
    assert (summary.ticks, summary.prices) == (20, 80)
    assert summary.seconds == pytest.approx(1.9)
    assert progress[0].startswith("ticks 1 | 1 session(s) | 0.0/s | AAPL 230.00 NVDA 135.00 META 600.00 ORCL 170.00")
    assert 3 <= len(progress) <= 5
    assert said[0] == "start AAPL at 230.00 from the config (no tick yet) for demo"
