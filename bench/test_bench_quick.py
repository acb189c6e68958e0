"""The benchmark command runs end to end (quick sizes), and its bulk loader writes what the projection would."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import batches, loader
from bench.common import BASE_DIR, make_users
from bench.eventlog import GeneratedLog, usernames
from ledger import clock
from markets import audit, projections, services
from markets.models import Batch, Holding, Order, Session
from oracle.models import Tick

EXPECTED = {
    "replay.2000",
    "replay.20000",
    "verify.2000",
    "verify.20000",
    "trade.services.full.0",
    "trade.services.normal.0",
    "trade.services.full.1",
    "trade.services.normal.1",
    "http.accept",
    "http.floor.10",
    "http.floor.100",
    "http.floor.one",
    "push.5",
    "push.storm.20",
    "push.20",
    "push.20.nudged",
    "clearing.4.100",
    "clearing.8.1000",
    "margin.trade.full",
    "margin.trade.normal",
    "fixing.vwap",
    "fixing.ladder",
}


@pytest.mark.django_db
def test_the_loader_writes_what_the_projection_rebuilds():
    organiser, traders, makers = usernames(8)
    users = make_users([organiser, *traders, *makers])
    log = GeneratedLog(
        900, 2, participants=8, legs=4, seed=9, settle=True, user_ids={n: u.pk for n, u in users.items()}
    )
    rows = list(log.rows())
    # Every kind of event but a cancelled session's (which has no RFQ cycles to generate).
    assert set(log.counts) == set(projections.HANDLERS) - {"SessionCancelled"}
    loader.load(rows)
    for stream in log.streams:
        session_id = stream.removeprefix("session-")
        stored = projections.snapshot(session_id)
        assert stored["trades"], "the log has trades"
        assert stored["fills"] and {o["status"] for o in stored["orders"]} >= {"filled", "expired", "cancelled"}
        assert projections.diff(stored, projections.rebuild(session_id)) == []
        # A log the services could have written: every cut re-clears from the log to what it records, and
        # the oracle's ticks it names hold its reference prices.
        report = audit.verify_session(session_id)
        assert report.ok, report.problems[:5]


def tick_at_cut(session_id: str, at: dt.datetime) -> None:
    """The oracle's prices at a cut: the last ones the log's cuts used."""
    from oracle.models import Tick

    last = Batch.objects.filter(session_id=session_id).order_by("-number").first()
    Tick.objects.bulk_create(
        Tick(session_id=session_id, symbol=leg, at=at, price=price, source="test")
        for leg, price in last.reference.items()
    )


@pytest.mark.django_db
def test_loaded_orders_rest_with_their_reservations_and_the_services_trade_on():
    """A log that ends with orders resting (no settlement): they reserve what they may give, and the services
    place, cancel and cut on top of the loaded session as on any other."""
    organiser, traders, makers = usernames(6)
    users = make_users([organiser, *traders, *makers], organisers=(organiser,))
    log = GeneratedLog(
        700, 1, participants=6, legs=3, seed=6, settle=False, user_ids={n: u.pk for n, u in users.items()}
    )
    loader.load(log.rows())
    session_id = log.streams[0].removeprefix("session-")
    resting = list(Order.objects.filter(session_id=session_id, status="resting"))
    assert resting, "the log ends with orders resting"
    for holding in Holding.objects.filter(session_id=session_id):
        expected = sum(
            o.rest for o in resting if o.participant_id == holding.participant_id and o.give_leg == holding.leg
        )
        assert holding.reserved == expected and 0 <= holding.reserved <= holding.qty
    order = resting[0]
    due = Session.objects.get(id=session_id).next_cut_at
    with clock.frozen(due - dt.timedelta(milliseconds=1)):
        services.cancel_order(order.participant.user, order.id)
    assert Holding.objects.get(participant=order.participant, leg=order.give_leg).reserved == sum(
        o.rest for o in resting[1:] if o.participant_id == order.participant_id and o.give_leg == order.give_leg
    )
    batches = Batch.objects.filter(session_id=session_id).count()
    with clock.frozen(due + dt.timedelta(milliseconds=1)):
        tick_at_cut(session_id, due)
        cut = services.clear_batch(None, session_id)  # the scheduler's cut, on the loaded grid
    assert (cut.number, cut.cut_at, cut.orders) == (batches + 1, due, len(resting) - 1)
    assert projections.diff(projections.snapshot(session_id), projections.rebuild(session_id)) == []
    assert audit.verify_session(session_id).ok


@pytest.mark.django_db
def test_the_loader_names_participants_as_the_projection_does():
    """A log whose ParticipantJoined events carry the name people see (and one that does not: the
    username stands for it) loads into the rows replay rebuilds."""
    organiser, traders, makers = usernames(4)
    users = make_users([organiser, *traders, *makers])
    log = GeneratedLog(60, 1, participants=4, legs=2, seed=3, user_ids={n: u.pk for n, u in users.items()})
    rows = []
    for row in log.rows():
        data = json.loads(row[4])
        if row[3] == "ParticipantJoined" and data["username"] != organiser:
            data["name"] = f"Zoë {data['username']} 🚀"
            row = (*row[:4], json.dumps(data, sort_keys=True, separators=(",", ":")), *row[5:])
        rows.append(row)
    loader.load(rows)
    session_id = log.streams[0].removeprefix("session-")
    stored = projections.snapshot(session_id)
    names = {username: name for _, username, name, *_ in stored["participants"]}
    assert names[organiser] == organiser and names[traders[0]] == f"Zoë {traders[0]} 🚀"
    assert projections.diff(stored, projections.rebuild(session_id)) == []


@pytest.mark.sqlite_only("the raw write's limit is a SQLite file")
@pytest.mark.django_db
def test_the_cut_bench_clears_through_the_service_what_the_clearing_gives_alone(tmp_path):
    """The through-the-service measurement cuts a loaded book of resting orders: the service's record is the
    clearing of the same book, the session verifies, and the limit stands beside it."""
    from django.db import connection

    from bench.common import copy_db

    schema = tmp_path / "schema.sqlite3"
    copy_db(Path(connection.settings_dict["NAME"]), schema)  # what is committed: the migrated schema
    ctx = SimpleNamespace(
        workdir=tmp_path, schema=schema, quick=True, sizes={"clearing": [[4, 100]]}, notes={}, log=print
    )
    [figure] = batches.run(ctx)
    row = figure.detail
    assert figure.key == "clearing.4.100" and row["fills"] > 0 and row["orders"] == 100
    assert figure.value > 0 and figure.limit > 0 and not figure.higher_is_better
    assert 0 < row["clear_s"] < row["limit_s"] and row["write_s"] > 0
    session_id = "cut4x100-0"
    [cut] = Batch.objects.filter(session_id=session_id)
    assert (cut.outcome, cut.orders, cut.filled) == ("cleared", 100, row["fills"])
    assert Order.objects.filter(session_id=session_id, status="resting").count() == 0  # each lived one batch
    assert audit.verify_session(session_id).ok
    assert "| 4 | 100 |" in batches.markdown(ctx.notes["clearing"])


@pytest.mark.slow
def test_quick_benchmark_run_reports_every_figure_with_a_ratio(tmp_path):
    out, page = tmp_path / "quick.json", tmp_path / "quick.md"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out), "--markdown", str(page)],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    figures = {f["key"]: f for f in result["figures"]}
    assert set(figures) == EXPECTED
    for key, figure in figures.items():
        assert figure["value"] > 0 and figure["limit"] > 0, key
        assert figure["ratio"] > 0, key
    assert result["sections"] == ["replay", "trade", "http", "push", "clearing", "margin", "fixing"]
    for field in ("cpu", "cores", "python", "sqlite"):
        assert result["machine"][field]
    # The server's CPU per request beside each HTTP rate (and /health's), on the page too.
    for key in ("http.accept", "http.floor.10", "http.floor.100"):
        assert figures[key]["detail"]["ours"]["server_cpu_ms"] > 0, key
        assert figures[key]["detail"]["health"]["server_cpu_ms"] > 0, key
    text = page.read_text()
    assert "python -m bench --quick" in text and "| Ratio |" in text
    assert "## What one request costs the server" in text and "| GET /health (SELECT 1) |" in text
    assert "Replay and verify" in run.stdout
    assert "## Batch auction cut" in text and figures["clearing.8.1000"]["detail"]["fills"] > 0
    # Margin's cost: the same accepts with shorting on (every taker short) beside off, on the page too.
    margin = figures["margin.trade.normal"]["detail"]
    assert (
        margin["traders_short"] > 30 and margin["statements_per_accept"]["on"] > margin["statements_per_accept"]["off"]
    )
    assert "## What margin costs an accept" in text
    assert "## What a fixing over a long window costs" in text and figures["fixing.vwap"]["detail"]["read"] == 20_000


@pytest.mark.slow
@pytest.mark.postgres_only("the PostgreSQL figures need a server")
@pytest.mark.django_db
def test_quick_postgres_benchmark_trades_pushes_and_loses_nothing(tmp_path):
    from sessionsite.testing import test_database_url

    out, page = tmp_path / "pg.json", tmp_path / "pg.md"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    command = [sys.executable, "-m", "bench", "--postgres", test_database_url(), "--quick", "--json", str(out)]
    run = subprocess.run(
        [*command, "--markdown", str(page)], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=150
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    figures = {f["key"]: f for f in result["figures"]}
    assert set(figures) == {"pg.trade", "pg.scale.2"}
    assert all(f["value"] > 0 and f["limit"] > 0 for f in figures.values())
    scale = figures["pg.scale.2"]["detail"]
    assert scale["trades"] > 0 and scale["lost"] == 0 and scale["busy"] == 0 and scale["refused"] == 0
    assert result["machine"]["postgresql"] and "| Ratio |" in page.read_text()


@pytest.mark.sqlite_only("the trade path's figures are measured on SQLite")
@pytest.mark.django_db(transaction=True)  # it switches PRAGMA synchronous, as the bench does (not in a transaction)
def test_the_margin_bench_times_the_same_accepts_with_shorting_on_and_off(tmp_path):
    """Two loaded sessions, one allowing shorts where every timed taker is short: both sides accept, the
    shorting side sends more statements (the margin rule's reads), and both sessions still verify."""
    from bench import margin
    from markets.models import Session, Trade

    ctx = SimpleNamespace(sizes={"margin_prior": 10, "margin_accepts": 8}, notes={}, log=print)
    full, normal = margin.run(ctx)
    assert (full.key, normal.key) == ("margin.trade.full", "margin.trade.normal")
    detail = normal.detail
    assert detail["traders_short"] >= 30 and detail["cpu_ms_per_accept_on"] > 0
    assert detail["statements_per_accept"]["on"] > detail["statements_per_accept"]["off"]
    on, off = Session.objects.get(id__startswith="marginon"), Session.objects.get(id__startswith="marginoff")
    assert on.shorting and not off.shorting
    x = projections.holdings_by_user(on.id)
    assert sum(1 for row in x.values() if min(row) < 0) == detail["traders_short"]
    for session in (on, off):
        assert Trade.objects.filter(session_id=session.id).count() > 2 * 8  # the timed accepts traded
        assert audit.verify_session(session.id).ok, session.id
    assert "| FULL |" in margin.markdown(ctx.notes["margin"])


@pytest.mark.sqlite_only("the bare pass reads the SQLite file")
@pytest.mark.django_db(transaction=True)  # the bare pass reads the file through its own connection
def test_the_fixing_bench_takes_the_exact_fixing_the_bare_pass_approximates(tmp_path):
    """Both sides read the same window: every tick loaded, and the same value (float64 may miss the last unit)."""
    from bench import fixing
    from oracle.fixing_methods import Obs, twap, vwap

    ctx = SimpleNamespace(workdir=tmp_path, quick=True, sizes={"fixing_ticks": 3_000}, notes={}, log=print)
    figures = {f.key: f for f in fixing.run(ctx)}
    assert set(figures) == {"fixing.vwap", "fixing.ladder"}
    rows = list(Tick.objects.filter(session_id=fixing.SESSION).order_by("at", "id"))
    obs = [Obs(t.id, t.at, t.price, t.volume) for t in rows]
    exact = {"vwap": vwap(obs).price, "ladder": twap(obs, fixing.window()).price}
    for name, figure in figures.items():
        rule = name.split(".")[1]
        assert figure.detail["read"] == len(rows) == 3_000
        assert figure.detail["value"] == exact[rule]
        assert abs(figure.detail["bare_value"] - exact[rule]) <= 1
        assert figure.value > 0 and figure.limit > 0
    assert "| vwap | 3,000 |" in fixing.markdown(ctx.notes["fixing"])
