"""The fixing record in the export: `fixing.csv` (one row per leg: value, tier, rule, why the tiers above
could not, ticks used and read, sources, volume, a composite's sources), the reconciliation's fixing cell
per leg and its added columns (its first columns as they were), for a ladder, a composite, a manual
settlement and a record from before per-leg records."""

from __future__ import annotations

import csv
import io

import pytest

from conftest import create_demo
from ledger import clock
from markets import services
from markets.selectors import export
from markets.selectors.export_fixing import leg_text, reconciliation_cells
from markets.selectors.fixing_record import leg_cells, read_record
from markets.tests.test_fixing_api import COMPOSITE
from markets.tests.test_fixings import T1, T2, everywhere, put, timed

pytestmark = pytest.mark.django_db

OLD_COLUMNS = ["kind", "user_id", "username", "name", "leg", "x_i", "S_t2", "fixing", "tick_ids", "x_i*S_t2", "seqs",
               "payout", "expected", "equal"]  # fmt: skip
LADDER = {"rule": "fallback", "tiers": [{"rule": "vwap", "window": 300, "min_volume": "1000"},
                                        {"rule": "twap", "window": 60}]}  # fmt: skip


def rows(sid: str, table: str) -> list[dict[str, str]]:
    text, _ = export.csv_text(export.SessionExport(export.find_session(sid)).table(table))
    return list(csv.DictReader(io.StringIO(text)))


def test_fixing_csv_says_per_leg_which_tier_answered_and_why_the_one_above_could_not(users):
    timed(users, LADDER)
    put("fix", -100, everywhere(100), 40)
    put("fix", -30, everywhere(110))
    clock.set_time(T2)
    services.settle_session(None, "fix")
    table = rows("fix", "fixing")
    assert [r["leg"] for r in table] == ["AAPL", "NVDA", "META", "ORCL"]
    nvda = table[1]
    assert nvda == nvda | {
        "S_t2": "105.000000", "value": "105.000000", "source": "oracle", "rule": "fallback", "tier": "1",
        "at": "2030-03-04T16:00:00.000000Z", "end": "2030-03-04T16:00:00.000000Z", "window_before": "300",
        "window_after": "0", "passed": "tier 0 vwap: vwap: volume 40 in the window, 1000 needed", "ticks_used": "2",
        "ticks_read": "2", "sources": "a", "volume": "40.000000", "by_source": "", "dropped": "", "refused": "",
    }  # fmt: skip
    assert nvda["described"].startswith("the VWAP over the 300 s before t2 (at least 1000 traded); if that")
    assert len(nvda["tick_ids"].split()) == 2
    assert nvda["tier_rule"] == "twap"  # the rule of the tier that answered

    recon = rows("fix", "reconciliation")
    assert list(recon[0])[: len(OLD_COLUMNS)] == OLD_COLUMNS
    basket = next(r for r in recon if r["kind"] == "basket" and r["leg"] == "NVDA")
    assert basket["fixing"] == "fallback tier 1 twap 60s at 2030-03-04T16:00:00.000000Z"
    assert basket["tick_ids"] == nvda["tick_ids"]
    assert (basket["fixing_tier"], basket["fixing_passed"], basket["fixing_sources"], basket["fixing_volume"]) == (
        "1", nvda["passed"], "a", "40.000000")  # fmt: skip
    total = next(r for r in recon if r["kind"] == "total")
    assert total["equal"] == "true" and total["fixing_tier"] == ""


def test_fixing_csv_names_a_composites_sources_kept_dropped_and_refused(users):
    timed(users, COMPOSITE | {"sources": ["a", "b", "c", "d"]})
    put("fix", -20, everywhere(100), source="a")
    put("fix", -15, everywhere(101), source="b")
    put("fix", -10, everywhere(150), source="c")
    clock.set_time(T2)
    services.settle_session(None, "fix")
    meta = rows("fix", "fixing")[2]
    assert (meta["value"], meta["by_source"], meta["dropped"]) == ("100.000000", "a=100.000000 b=101.000000",
                                                                   "c=150.000000")  # fmt: skip
    assert meta["refused"] == "d: median: 0 ticks in the window, 1 needed" and meta["volume"] == ""
    assert meta["sources"] == "a b"
    basket = next(r for r in rows("fix", "reconciliation") if r["kind"] == "basket")
    assert basket["fixing"] == "composite of median 60s at 2030-03-04T16:00:00.000000Z"


def test_a_manual_settlement_exports_its_prices_as_given(users):
    clock.set_time(T1)
    create_demo(users, "byhand")
    services.settle_session(users["org"], "byhand", prices={"AAPL": "190.1", "NVDA": "480.2", "META": "350",
                                                            "ORCL": "104.3"})  # fmt: skip
    aapl = rows("byhand", "fixing")[0]
    assert aapl == aapl | {"leg": "AAPL", "S_t2": "190.100000", "value": "190.100000", "source": "manual",
                           "rule": "manual", "at": "", "tier": "", "ticks_used": "0", "tick_ids": "", "passed": ""}  # fmt: skip
    assert aapl["described"] == "prices given by hand at the settlement (no fixing rule)"
    leg_row = next(r for r in rows("byhand", "reconciliation") if r["kind"] == "leg")
    assert leg_row["fixing"] == "manual" and leg_row["fixing_tier"] == ""


def test_a_record_from_before_per_leg_records_reads_with_what_it_carries():
    old = {"rule": {"rule": "median", "window": 60}, "at": "2030-03-04T16:00:00+00:00", "ticks": {"A": [7, 9]},
           "source": "oracle"}  # fmt: skip
    record = read_record(old, {"A": 101_000_000, "B": 5_000_000}, ["A", "B"])
    assert record.described == "the median price over the 60 s before t2" and not record.detailed
    assert record.window == {"before": 60, "after": 0} and record.end == old["at"]
    a, b = record.legs
    assert leg_cells(a) == {"value": "101.000000", "tier": "", "rule": "median", "passed": "", "ticks_used": "2",
                            "tick_ids": "7 9", "ticks_read": "", "sources": "", "volume": "", "by_source": "",
                            "dropped": "", "refused": ""}  # fmt: skip
    assert leg_cells(b)["ticks_used"] == "0"
    assert leg_text(record, a) == "median 60s at 2030-03-04T16:00:00.000000Z"  # as the reconciliation said it
    assert reconciliation_cells(record, ["A", "B"]) == {"A": ["", "", "", ""], "B": ["", "", "", ""]}
