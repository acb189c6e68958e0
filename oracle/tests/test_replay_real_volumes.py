"""A real file with volumes (GOOG's 2008 daily closes and share volumes, and its opens without volume as a
second leg; oracle/data/README.md) replayed into a session at run_oracle's pace (one row a second,
`--tick-ms 1000`), settled by the scheduler by VWAP through a fallback ladder, and each value checked
against a computation written here from the raw file with csv and Fraction alone (none of oracle's
parsing or fixing code), floored to 10**-6."""

from __future__ import annotations

import csv
import datetime as dt
import math
from fractions import Fraction
from itertools import accumulate
from pathlib import Path

import pytest

from conftest import create_demo
from ledger import clock, store
from markets import audit, services
from markets.models import stream_name
from oracle import sources
from oracle.models import Tick

pytestmark = pytest.mark.django_db

FILE = Path(__file__).resolve().parents[1] / "data" / "goog_2008_volumes.csv"
T1 = dt.datetime(2031, 5, 6, 13, 0, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(hours=1)
LEGS = ["GOOG", "GOOG OPEN"]


def raw_rows() -> list[tuple[str, Fraction, int, Fraction]]:
    """(date, close, volume in shares, open) straight from the file."""
    with open(FILE, newline="") as handle:
        reader = csv.DictReader(handle)
        return [(r["ts"], Fraction(r["GOOG"]), int(r["GOOG:volume"]), Fraction(r["GOOG OPEN"])) for r in reader]


def independent_vwap(last_n: int) -> int:
    """sum(p v) / sum(v) over the last `last_n` rows, floored to the price scale (10**-6)."""
    rows = raw_rows()[-last_n:]
    value = sum(p * v for _, p, v, _ in rows) / sum(v for _, _, v, _ in rows)
    return math.floor(value * 10**6)


def independent_open_twap(seconds: int) -> int:
    """The opens' time-weighted average over (t2 - seconds, t2], one row a second and the last at t2: the
    row at t2 - seconds is in force for the window's first second, each later one for a second, the row
    at t2 for none; so the mean of those `seconds` rows, floored."""
    rows = raw_rows()[-seconds - 1 : -1]
    return math.floor(sum(o for *_, o in rows) / seconds * 10**6)


def replay(sid: str) -> int:
    """Store the file's rows as run_oracle's replay does (its loader, its feed, one row a second), the last
    row stamped at t2; returns the number of rows."""
    rows = sources.load_replay_csv(FILE, LEGS)
    delays = sources.replay_delays([r.at for r in rows], tick_ms=1000)
    start = T2 - dt.timedelta(seconds=sum(delays))
    ticks = []
    for offset, (_, prices, volumes) in zip(
        accumulate(delays), sources.replay_feed(rows, delays, volumes=True), strict=True
    ):
        at = start + dt.timedelta(seconds=offset)
        ticks += [
            Tick(session_id=sid, symbol=leg, at=at, price=prices[leg], volume=volumes.get(leg), source="replay")
            for leg in LEGS
        ]
    Tick.objects.bulk_create(ticks)
    return len(rows)


def settle(users, sid: str, rule: dict) -> dict | None:
    """The session's SessionSettled data once the scheduler ran past t2 (None: it did not settle)."""
    clock.set_time(T1)
    create_demo(users, sid, legs=LEGS, q=[100, 50], t2=T2, end_mode="timed", fixing_rule=rule)
    assert replay(sid) == 250
    clock.set_time(T2 + dt.timedelta(seconds=1))
    services.run_due()
    settled = [e for e in store.iter_stream(stream_name(sid)) if e.type == "SessionSettled"]
    return settled[-1].data if settled else None


def test_the_independent_reading_matches_the_files_own_numbers():
    rows = raw_rows()
    assert len(rows) == 250 and rows[-1] == ("2008-10-14", Fraction("362.71"), 7_784_800, Fraction("393.53"))
    # By hand, the last two days: (381.02 x 8,905,500 + 362.71 x 7,784,800) / 16,690,300
    #   = (3,393,173,610 + 2,823,624,808) / 16,690,300 = 6,216,798,418 / 16,690,300 = 372.4797288..., floored 372.479728
    assert independent_vwap(2) == 372_479_728


def test_a_real_file_settled_by_vwap_matches_an_independent_computation(users):
    # VWAP, else TWAP: the close (GOOG) has volumes and settles by VWAP; the open (GOOG OPEN) has none
    # (its file has no volume column) and falls to TWAP, the record saying why.
    rule = {"rule": "fallback", "tiers": [{"rule": "vwap", "window": 60}, {"rule": "twap", "window": 60}]}
    data = settle(users, "goog", rule)
    assert data["prices"] == {"GOOG": independent_vwap(60), "GOOG OPEN": independent_open_twap(60)}
    close, opening = data["fixing"]["legs"]["GOOG"], data["fixing"]["legs"]["GOOG OPEN"]
    assert (close["tier"], close["rule"], len(close["used"]), close["passed"]) == (0, "vwap", 60, [])
    assert close["volume"] == sum(v for _, _, v, _ in raw_rows()[-60:]) * 10**6  # in 10**-6 units
    assert (opening["tier"], opening["rule"], opening["volume"]) == (1, "twap", None)
    assert opening["passed"] == [{"tier": 0, "rule": "vwap", "reason": "vwap: volume 0 in the window"}]
    assert audit.verify_session("goog").ok


def test_by_vwap_alone_the_leg_without_volumes_makes_the_session_wait(users):
    assert settle(users, "goog-vwap", {"rule": "vwap", "window": 60}) is None
    waiting = [e.data for e in store.iter_stream(stream_name("goog-vwap")) if e.type == "SettlementWaiting"]
    assert waiting and "GOOG OPEN" in str(waiting[-1]) and "vwap: volume 0 in the window" in str(waiting[-1])


def test_a_real_file_settled_by_a_ladder_takes_its_first_sufficient_tier(users):
    rule = {
        "rule": "fallback",
        "tiers": [
            {"rule": "vwap", "window": 60, "source": "lse"},  # no tick from that source: no volume
            {"rule": "vwap", "window": 20, "min_ticks": 30},  # 20 rows in 20 s: too few
            {"rule": "vwap", "window": 45, "min_volume": "100000000"},  # 45 days trade far more than 10**8
            {"rule": "last"},
        ],
    }
    data = settle(users, "goog-ladder", rule)
    assert data["prices"]["GOOG"] == independent_vwap(45)
    assert data["prices"]["GOOG OPEN"] == raw_rows()[-1][3] * 10**6  # the last open: 393.53
    leg = data["fixing"]["legs"]["GOOG"]
    assert leg["tier"] == 2
    assert [p["reason"] for p in leg["passed"]] == [
        "vwap: volume 0 in the window",
        "vwap: 20 ticks with volume in the window, 30 needed",
    ]
    assert data["fixing"]["legs"]["GOOG OPEN"]["tier"] == 3
    assert audit.verify_session("goog-ladder").ok
