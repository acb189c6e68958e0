"""`manage.py simulate`: a seeded market through the real services, its checks, and its repeatability."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import F

from ledger import clock, store
from markets import audit, projections
from markets.models import RFQ, Batch, Holding, Order, Quote, Settlement, Trade
from markets.simulation import SimParams, Simulation, SimulationError
from markets.simulation.engine import T0
from markets.simulation.result import ACTIONS, BATCH_ACTIONS
from oracle.models import Tick

BASE_DIR = Path(settings.BASE_DIR)
HEAD = re.compile(r"^\s*head hash\s+([0-9a-f]{64})$", re.M)
EVENT = re.compile(r"^\s+#(\d+) v(\d+) (\w+) ([0-9a-f]{64})$", re.M)


@pytest.mark.django_db
def test_small_run_trades_refuses_settles_and_verifies():
    steps_seen = []
    params = SimParams(seed=11, steps=300, participants=5, legs=4, makers=2)
    before = dt.datetime(2029, 6, 1, tzinfo=dt.UTC)
    with clock.frozen(before):
        result = Simulation(params, progress=lambda step, total: steps_seen.append((step, total))).run()
        assert clock.now() == before  # the run's simulated clock is put back as it was

    assert steps_seen == [(step, 300) for step in range(301)]
    for action in ("rfq", "quote", "accept", "cancel", "withdraw", "settle"):
        counts = result.actions[action]
        assert counts.accepted > 0, f"no {action} accepted"
        assert counts.rejected > 0, f"no {action} rejected"
        assert counts.on_purpose > 0, f"no bad {action} sent on purpose"
    assert result.actions["expire"].accepted > 0
    assert result.actions["settle"].accepted == 1
    # Every kind of bad input named by the spec was sent and refused with its own code.
    for code in ("invalid_number", "invalid_ttl", "not_your_rfq", "not_a_participant", "quote_expired",
                 "insufficient_inventory", "same_leg", "unknown_leg", "rfq_closed", "quote_not_live",
                 "not_batch"):  # fmt: skip
        assert result.codes[code] > 0, f"never refused with {code}"

    # What the run left in the database is a settled, verified session.
    sid = "sim-11"
    assert Trade.objects.filter(session_id=sid).count() == result.trades > 0
    assert {"filled", "cancelled"} <= set(RFQ.objects.filter(session_id=sid).values_list("status", flat=True))
    assert {"filled", "withdrawn", "lapsed"} <= set(
        Quote.objects.filter(rfq__session_id=sid).values_list("status", flat=True)
    )
    settlement = Settlement.objects.get(session_id=sid)
    last = {t.symbol: t.price for t in Tick.objects.filter(session_id=sid).order_by("id")}
    assert settlement.prices == last == result.prices  # settled at the oracle's fixing
    assert settlement.fixing["source"] == "oracle"
    assert projections.diff(projections.snapshot(sid), projections.rebuild(sid)) == []
    assert audit.verify_session(sid).ok
    head = store.head(f"session-{sid}")
    assert (result.head_hash, result.head_version, result.events_written) == (head.hash, head.version, head.version)
    assert T0 < head.at < T0 + dt.timedelta(days=1)  # all on the simulated clock
    assert result.ops == sum(c.attempted for c in result.actions.values()) >= 300


@pytest.mark.django_db
def test_command_prints_progress_and_summary():
    out, err = io.StringIO(), io.StringIO()
    call_command("simulate", "--seed", "4", "--steps", "40", "--tick-every", "7", stdout=out, stderr=err)
    text = out.getvalue()
    for action in ACTIONS:  # an RFQ session's table has no rows for cancelling orders or cuts
        shown = re.search(rf"^\s+{action}\s+\d+\s+\d+\s+\d+\s+\d+$", text, re.M)
        if action == "liquidate":  # only a session with shorting has liquidation runs
            assert not shown, action
        elif action not in BATCH_ACTIONS:
            assert shown, action
        elif action != "order":  # an order tried on purpose (not_batch) has its row
            assert not shown, action
    assert "verify_session ok" in text
    assert re.search(r"time\s+[\d.]+ s, [\d.]+ ops/s", text)
    assert HEAD.search(text).group(1) == store.head("session-sim-4").hash
    lines = err.getvalue().splitlines()  # not a terminal: one line every 5%
    assert len(lines) == 20 and lines[-1].startswith("simulate [") and "100% step 40/40" in lines[-1]

    quiet_out, quiet_err = io.StringIO(), io.StringIO()
    call_command("simulate", "--seed", "4", "--steps", "5", "--session-id", "q", "--quiet", "-v", "2",
                 stdout=quiet_out, stderr=quiet_err)  # fmt: skip
    assert quiet_err.getvalue() == ""
    listed = EVENT.findall(quiet_out.getvalue())
    assert [int(v) for _, v, _, _ in listed] == list(range(1, len(listed) + 1))
    assert listed[-1][3] == HEAD.search(quiet_out.getvalue()).group(1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--participants", "2", "--makers", "2"], "must exceed --makers"),
        (["--legs", "1"], "--legs must be 2 to 32"),
        (["--makers", "0"], "--makers must be at least 1"),
        (["--seed", "-1"], "--seed must be 0 or more"),
        (["--tick-every", "0"], "--tick-every must be at least 1"),
        (["--steps", "5", "--inject-fault", "6"], "--inject-fault must name a step from 1 to --steps"),
        (["--session-id", "no spaces"], "cannot set up session no spaces: Session id must be"),
        (["--mechanism", "auction"], "invalid choice: 'auction'"),
        (["--mechanism", "batch", "--batch-seconds", "0"], "--batch-seconds must be 1 to 3600"),
    ],
)
def test_bad_parameters_are_refused(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("simulate", *args, "--quiet", stdout=io.StringIO())


@pytest.mark.django_db
def test_an_existing_session_is_not_reused():
    call_command("simulate", "--steps", "3", "--session-id", "again", "--quiet", stdout=io.StringIO())
    with pytest.raises(CommandError, match="session again already exists"):
        call_command("simulate", "--steps", "3", "--session-id", "again", "--quiet", stdout=io.StringIO())


@pytest.mark.django_db
def test_a_corrupted_projection_stops_the_run_naming_seed_and_step():
    with pytest.raises(CommandError) as caught:
        call_command(
            "simulate", "--seed", "3", "--steps", "60", "--inject-fault", "25", "--quiet", stdout=io.StringIO()
        )
    message = str(caught.value)
    assert "simulation seed 3, step 25 " in message
    assert "Conservation broken on leg #0" in message
    assert re.search(r"Events involved: #\d+ \w+ \(v\d+\)", message)
    assert "--seed 3 --steps 25" in message


@pytest.mark.django_db
def test_a_projection_that_disagrees_with_the_trade_event_is_caught(monkeypatch):
    """A projection bug the services' own checks miss: each trade also skims one base unit of the give leg
    from taker to maker. Every leg still sums to q, but the holdings no longer move by the event's deltas."""
    original = projections.HANDLERS["TradeExecuted"]

    def skimming(event, d):
        original(event, d)
        leg = event.data["taker_deltas"].index(-d["give_qty"])
        for user_id, delta in ((d["taker_id"], -1), (d["maker_id"], 1)):
            Holding.objects.filter(participant__user_id=user_id, session_id=event.stream.removeprefix("session-"),
                                   leg_index=leg).update(qty=F("qty") + delta)  # fmt: skip

    monkeypatch.setitem(projections.HANDLERS, "TradeExecuted", skimming)
    with pytest.raises(SimulationError) as caught:
        Simulation(SimParams(seed=5, steps=200)).run()
    error = caught.value
    assert error.seed == 5 and 1 <= error.step <= 200
    assert error.action.startswith("accept by ")
    assert f"simulation seed 5, step {error.step} " in str(error)
    assert error.problem.startswith("holdings moved by {")  # each leg still sums to q: conservation holds
    assert [type_ for _, type_, _ in error.events] == ["TradeExecuted"]


@pytest.mark.django_db
def test_a_batch_run_places_cancels_cuts_refuses_settles_and_verifies():
    result = Simulation(SimParams(seed=21, steps=300, legs=3, participants=6, mechanism="batch")).run()
    for action in ("order", "cancel_order", "cut"):
        counts = result.actions[action]
        assert counts.accepted > 0 and counts.rejected > 0 and counts.on_purpose > 0, action
    assert result.actions["rfq"].accepted == 0 and result.codes["not_rfq"] > 0  # batch only: no RFQ
    for code in ("insufficient_available", "order_too_small", "invalid_lifetime", "not_your_order", "order_closed",
                 "order_not_found", "batch_cut", "not_organiser", "same_leg"):  # fmt: skip
        assert result.codes[code] > 0, f"never refused with {code}"
    assert result.cuts > 10 and result.fills > 0
    sid = "sim-21"
    assert Batch.objects.filter(session_id=sid).count() == result.cuts
    assert {"filled", "expired", "cancelled"} <= set(
        Order.objects.filter(session_id=sid).values_list("status", flat=True)
    )
    assert not Holding.objects.filter(session_id=sid, reserved__gt=0).exists()  # settled: every order lapsed
    assert audit.verify_session(sid).ok
    text = result.table()
    assert "batch session (cut every 20 s)" in text and f"batches           {result.cuts} cut" in text
    assert not re.search(r"^\s+quote\s+\d", text, re.M)


@pytest.mark.django_db
def test_the_command_runs_a_session_with_both():
    out = io.StringIO()
    call_command("simulate", "--seed", "8", "--steps", "120", "--mechanism", "both", "--quiet", stdout=out)
    text = out.getvalue()
    for action in ACTIONS:  # all but liquidation runs (a session with shorting has those)
        assert bool(re.search(rf"^\s+{action}\s+\d+\s+\d+\s+\d+\s+\d+$", text, re.M)) == (action != "liquidate")
    assert "both session" in text and "0 <= reserved <= held" in text and "verify_session ok" in text
    verified = io.StringIO()
    call_command("verify_ledger", "sim-8", stdout=verified)  # what an auditor runs: clean
    assert "sim-8:" in verified.getvalue() and "ok" in verified.getvalue()


@pytest.mark.django_db
def test_a_reservation_out_of_step_with_the_resting_orders_is_caught():
    """A projection bug the leg totals cannot see: a holding reserves one base unit more than its orders."""

    def skew(sim, step):
        if step == 30:
            first = Holding.objects.filter(session_id=sim.sid).order_by("id").first()
            Holding.objects.filter(pk=first.pk).update(reserved=F("reserved") + 1)

    with pytest.raises(SimulationError) as caught:
        Simulation(SimParams(seed=3, steps=60, mechanism="batch"), after_action=skew).run()
    assert (
        caught.value.step == 30 and "reserves" in caught.value.problem and "resting orders give" in caught.value.problem
    )


def _run(db: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env["DATABASE_URL"] = f"sqlite:///{db}"
    return subprocess.Popen(
        [sys.executable, "manage.py", "simulate", "--quiet", "-v", "2", "--session-id", "sim-det", *args],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_same_seed_same_ledger_in_fresh_databases(tmp_path):
    template = tmp_path / "template.db"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env["DATABASE_URL"] = f"sqlite:///{template}"
    migrate = [sys.executable, "manage.py", "migrate", "-v0"]
    subprocess.run(migrate, cwd=BASE_DIR, env=env, check=True, capture_output=True, timeout=120)
    both = ["--mechanism", "both", "--seed", "5", "--steps", "100"]
    runs = {"a": ["--seed", "5", "--steps", "100"], "b": ["--seed", "5", "--steps", "100"],
            "other": ["--seed", "6", "--steps", "100"], "prefix": ["--seed", "5", "--steps", "50"],
            "both-a": both, "both-b": both}  # fmt: skip
    procs = {}
    for name, args in runs.items():
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{template}{suffix}").exists():
                shutil.copy(f"{template}{suffix}", tmp_path / f"{name}.db{suffix}")
        procs[name] = _run(tmp_path / f"{name}.db", *args)
    outputs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs[name] = (HEAD.search(out).group(1), EVENT.findall(out))

    (head_a, events_a), (head_b, events_b) = outputs["a"], outputs["b"]
    assert head_a == head_b and events_a == events_b  # every event hash equal, not only the head
    assert outputs["both-a"] == outputs["both-b"]  # limit orders and batch cuts too
    assert {"OrderPlaced", "BatchCleared", "TradeExecuted"} <= {type_ for _, _, type_, _ in outputs["both-a"][1]}
    assert head_a == events_a[-1][3]
    head_other, events_other = outputs["other"]
    assert head_other != head_a and events_other[0][3] != events_a[0][3]  # q is drawn from the seed
    # The first steps of a run do not depend on how many follow: a failure at step K replays with --steps K.
    _, events_prefix = outputs["prefix"]
    assert events_prefix[-1][2] == "SessionSettled"
    # The settlement records first the quotes that had expired by then (QuotesExpired), if any.
    shared = events_prefix[: -2 if events_prefix[-2][2] == "QuotesExpired" else -1]
    assert events_a[: len(shared)] == shared and events_a[len(shared)][3] != events_prefix[len(shared)][3]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fixing", "seeds", "extra"),
    [
        ("fallback", range(21, 27), {}),
        ("composite", range(31, 35), {}),
        ("vwap", (41,), {"short_limit": "0.3"}),
        ("twap", (42,), {"mechanism": "batch"}),
        ("median", (43,), {}),
    ],
)
def test_runs_settle_by_each_fixing_rule_as_the_model_makes_it_from_its_own_ticks(fixing, seeds, extra, settings):
    """The settlement's prices and the tier of each leg's record equal the reference model's, made from the
    simulator's own tape; a ladder sometimes falls past its VWAP tier, a composite sometimes drops a feed."""
    tiers, dropped = set(), 0
    for k, seed in enumerate(seeds):
        settings.ALLOW_MANUAL_SETTLE = k % 2 == 0  # manual sessions settled now, timed ones at t2
        result = Simulation(SimParams(seed=seed, steps=60, fixing=fixing, **extra)).run()
        settlement = Settlement.objects.get(session_id=f"sim-{seed}")
        assert settlement.fixing["rule"]["rule"] == fixing and result.verified
        tiers |= {leg["tier"] for leg in settlement.fixing["legs"].values()}
        dropped += result.fixing_dropped
    if fixing == "fallback":
        assert tiers == {0, 1}  # the VWAP tier answered in some runs and failed (no volume) in others
    if fixing == "composite":
        assert dropped > 0


def test_an_unknown_fixing_is_refused_before_anything_is_written():
    with pytest.raises(ValueError, match="--fixing must be one of last, median"):
        SimParams(fixing="vwop").validate()
