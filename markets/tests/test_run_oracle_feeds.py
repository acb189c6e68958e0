"""run_oracle's inputs in-process (fake clock): `--source` names the feed, the sim's seeded volumes, a replay
row's volumes, and several feeds on one session each resuming from its own ticks."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import pytest
from django.core.management import CommandError, call_command

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets.management.commands import run_oracle
from markets.models import Session
from markets.tests.test_run_oracle import T0, FakeTime, prices_of, run, write_csv
from oracle import sources
from oracle.models import Tick
from oracle.simvolumes import SimVolumes
from oracle.sources import load_config, price_text
from oracle.tests.test_sources import DEFAULT_CONFIG, LEGS

WILD = ("--tick-ms", "500", "--vol", "3", "--time-scale", "100000")
COMPOSITE = {"rule": "composite", "inner": {"rule": "last"}, "sources": ["a", "b"], "min_sources": 2}


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fake(monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(run_oracle.Command, "runner_options", {"sleep": fake.sleep, "monotonic": fake.monotonic})
    return fake


def newest(session_id: str, leg: str, source: str | None = None) -> Tick:
    ticks = Tick.objects.filter(session_id=session_id, symbol=leg)
    return (ticks.filter(source=source) if source else ticks).order_by("-at", "-id").first()


def after(session_id: str, leg: str, tick: Tick, source: str) -> list[int]:
    rows = Tick.objects.filter(session_id=session_id, symbol=leg, source=source, id__gt=tick.id).order_by("at", "id")
    return [t.price for t in rows]


# ---------------------------------------------------------------- --source


def test_source_names_every_tick_and_the_banner(users, fake):
    create_demo(users)
    out = run("--session-id", "demo", "--source", "Börse feed #2", "--seed", "7", "--max-ticks", "3")
    assert set(Tick.objects.values_list("source", flat=True)) == {"Börse feed #2"}
    assert out.startswith("oracle Börse feed #2: seed 7, 500 ms ticks")  # the seed is still said
    run("--session-id", "demo", "--seed", "7", "--max-ticks", "1", "--quiet")
    assert Tick.objects.filter(source="sim:seed=7").count() == len(LEGS)  # without it: as before


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "1 to 64 characters, not 0"),
        ("x" * 65, "1 to 64 characters, not 65"),
        ("a\nb", "printable text: it holds '\\n' (U+000A)"),
        ("tab\there", "printable text: it holds '\\t' (U+0009)"),
        ("nul\x00", "U+0000"),
        (" lse", "no space at either end"),
        ("lse ", "no space at either end"),
    ],
)
def test_a_bad_source_name_is_one_line_and_writes_nothing(users, fake, name, message):
    create_demo(users, "timed", end_mode="timed", t2=T0 + dt.timedelta(seconds=1))
    events = Event.objects.count()
    with pytest.raises(CommandError) as caught:
        run("--session-id", "timed", "--source", name, "--max-ticks", "5")
    assert message in str(caught.value) and str(caught.value).startswith("--source ")
    assert "\n" not in str(caught.value)
    assert Tick.objects.count() == 0 and Event.objects.count() == events  # not even the scheduler ran


# ---------------------------------------------------------------- volumes


def test_the_sim_stores_a_seeded_lognormal_volume_on_every_tick(users, fake):
    create_demo(users, "one")
    create_demo(users, "two")
    run("--all", "--seed", "3", "--max-ticks", "6", "--quiet")
    expected = SimVolumes(load_config(DEFAULT_CONFIG), 3)
    for n in range(6):
        drawn = expected.draw(LEGS)
        for sid in ("one", "two"):  # every session priced on the walk trades the symbol's size
            for leg in LEGS:
                tick = Tick.objects.filter(session_id=sid, symbol=leg).order_by("at", "id")[n]
                assert tick.volume == drawn[leg]
    volumes = list(Tick.objects.values_list("volume", flat=True))
    assert all(v >= 10**6 and v % 10**6 == 0 for v in volumes)  # whole units (the default lot), never none
    assert len(set(volumes)) > 10
    first = list(Tick.objects.order_by("id").values_list("price", "volume"))
    Tick.objects.all().delete()
    clock.advance(5)
    run("--all", "--seed", "3", "--max-ticks", "6", "--quiet")  # no tick left: from the config again
    assert list(Tick.objects.order_by("id").values_list("price", "volume")) == first  # same seed, same ticks


def test_a_replay_row_with_volumes_stores_them_and_one_without_stores_none(users, fake, tmp_path, monkeypatch):
    """The CSV reader's rows (`sources.Row`) may carry per-symbol volumes; the runner stores them, looping too."""
    create_demo(users)
    path = write_csv(tmp_path, "ts,AAPL,NVDA,META,ORCL\n2030-01-01T00:00:00,1,2,3,4\n2030-01-01T00:00:01,5,6,7,8\n")
    read = sources.load_replay_csv

    def with_volumes(*args):
        rows = read(*args)
        return [sources.Row(rows[0][0], rows[0][1], {"AAPL": 1_500_000, "NVDA": 7}), sources.Row(*rows[1])]

    monkeypatch.setattr(sources, "load_replay_csv", with_volumes)
    run("--session-id", "demo", "--mode", "replay", "--csv", str(path), "--loop", "--max-ticks", "3", "--quiet")
    got = {leg: list(Tick.objects.filter(symbol=leg).order_by("id").values_list("volume", flat=True)) for leg in LEGS}
    assert got["AAPL"] == [1_500_000, None, 1_500_000] and got["NVDA"] == [7, None, 7]
    assert got["META"] == got["ORCL"] == [None, None, None]  # no volume for them in the row
    assert set(Tick.objects.values_list("source", flat=True)) == {"replay:prices.csv"}


# ---------------------------------------------------------------- several feeds


def test_each_feed_resumes_from_its_own_ticks_and_a_new_feed_joins_where_the_market_is(users, fake):
    create_demo(users)
    run("--session-id", "demo", "--source", "a", "--seed", "1", "--max-ticks", "6", "--quiet", *WILD)
    a1 = {leg: newest("demo", leg, "a") for leg in LEGS}
    clock.advance(5)
    out = run("--session-id", "demo", "--source", "b", "--seed", "2", "--max-ticks", "6", *WILD)
    for leg in LEGS:  # b had no tick: it starts at a's newest price, and says whose it was
        assert after("demo", leg, a1[leg], "b")[0] == a1[leg].price
        assert f"resume {leg} at {price_text(a1[leg].price)} from tick {a1[leg].id} of demo" in out
        assert "UTC, feed a) for demo" in out
    b1 = {leg: newest("demo", leg, "b") for leg in LEGS}
    assert all(b1[leg].price != a1[leg].price for leg in LEGS)
    clock.advance(5)
    out = run("--session-id", "demo", "--source", "a", "--seed", "3", "--max-ticks", "4", *WILD)
    for leg in LEGS:  # a continues from its own newest tick, not from b's (the session's newest)
        assert newest("demo", leg).source == "a"
        assert after("demo", leg, b1[leg], "a")[0] == a1[leg].price
        assert f"resume {leg} at {price_text(a1[leg].price)} from tick {a1[leg].id} of demo" in out
    assert "feed " not in out


def test_two_feeds_settle_a_composite_of_both_and_the_ledger_verifies(users, fake):
    """Two feeds taking turns on one session (as two processes do), then the scheduler settles it by the
    composite of the two sources; the record names both, and verify_ledger makes it again."""
    t2 = T0 + dt.timedelta(seconds=20)
    create_demo(users, "timed", end_mode="timed", t2=t2, fixing_rule=COMPOSITE)
    for turn in itertools.count():
        if Session.objects.get(id="timed").status == "settled":
            break
        assert turn < 20
        run("--session-id", "timed", "--source", "ab"[turn % 2], "--seed", str(turn), "--max-ticks", "4", "--quiet",
            *WILD)  # fmt: skip
    event = Event.objects.get(stream="session-timed", type="SessionSettled")
    fixing = event.data["fixing"]
    for leg in LEGS:
        lasts = {s: newest_at(leg, s, t2) for s in "ab"}
        record = fixing["legs"][leg]
        assert record["by_source"] == {s: tick.price for s, tick in lasts.items()}
        assert event.data["prices"][leg] == min(t.price for t in lasts.values())  # lower median of two
        assert sorted(record["used"]) == sorted(t.id for t in lasts.values())
    verify = io.StringIO()
    call_command("verify_ledger", stdout=verify)
    assert "chain intact, replay matches" in verify.getvalue()
    assert prices_of("timed", "AAPL")  # priced throughout


def newest_at(leg: str, source: str, at: dt.datetime) -> Tick:
    ticks = Tick.objects.filter(session_id="timed", symbol=leg, source=source, at__lte=at)
    return ticks.order_by("-at", "-id").first()


def test_the_admin_lists_each_ticks_volume_and_filters_by_feed(client, users, fake):
    org = users["org"]
    org.is_staff = org.is_superuser = True
    org.save()
    client.force_login(org)
    Tick.objects.create(session_id="demo", symbol="AAPL", at=T0, price=1, source="a", volume=1_234_500_000)
    Tick.objects.create(session_id="demo", symbol="AAPL", at=T0, price=2, source="b", volume=None)
    page = client.get("/admin/oracle/tick/?source=a").content.decode()
    assert "volume (units)" in page.lower() and "1234.5" in page and "1 tick" in page
