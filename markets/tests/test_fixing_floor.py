"""The fixing as people see it: on the floor the rule in words and, while its window runs, its progress
per leg (pushed with each tick then, never for a `last` rule nor before the window opens); while the
settlement waits, what is missing per leg and tier and what the organiser may do, on the floor and the
monitor; the organiser's preview in words; and on the results page the record (rule, window, per leg the
value, tier, why the tiers above did not, the ticks, sources, volume and outliers), old records too."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from conftest import create_demo
from ledger import clock
from markets import services
from markets.models import Session
from markets.push import panels, render
from markets.selectors import fixings
from markets.tests.test_fixings import LEGS, T2, everywhere, put, settle_with_an_outlier, timed

pytestmark = pytest.mark.django_db

LADDER = {
    "rule": "fallback",
    "tiers": [{"rule": "vwap", "window": 300, "min_volume": "1000"}, {"rule": "last"}],
}


def page(user, name: str, sid: str = "fix") -> str:
    client = Client()
    client.force_login(user)
    return client.get(reverse(f"markets:{name}", args=[sid])).content.decode()


def tick_push(sid: str) -> str:
    return render.render_panels(sid, panels.stale([panels.TICK]))["html"]


def test_the_floor_says_the_rule_and_the_window_progress_per_leg(users):
    timed(users, LADDER)
    put("fix", -400, everywhere(90), 5000)  # before the window: never counted
    put("fix", -200, everywhere(100), 400)
    put("fix", -100, dict(AAPL=102, NVDA=102, META=102), 300)  # ORCL trades nothing more
    clock.set_time(T2 - dt.timedelta(seconds=50))
    panel = fixings.fixing_panel(Session.objects.get(id="fix"))
    assert panel.state == "running" and panel.live
    aapl, *_, orcl = panel.legs
    assert (aapl.ticks, aapl.volume, aapl.value, aapl.tier, aapl.rule) == (2, 700, 102, 2, "last")
    assert [p.reason for p in aapl.passed] == ["vwap: volume 700 in the window, 1000 needed"]
    assert (orcl.ticks, orcl.volume) == (1, 400)
    html = page(users["alice"], "floor")
    assert "The VWAP over the 300 s before t2 (at least 1000 traded); if that cannot be made, the last price" in html
    assert 'Window <span class="mono">15:55:00\u201316:00:00</span> UTC, <strong>running</strong>' in html
    # Enough volume now: the first tier answers; a tick's push carries the panel.
    put("fix", -40, everywhere(110), 500)
    clock.set_time(T2 - dt.timedelta(seconds=30))
    pushed = tick_push("fix")
    assert 'id="fixing"' in pushed
    panel = fixings.fixing_panel(Session.objects.get(id="fix"))
    # (100 x 400 + 102 x 300 + 110 x 500) / 1200 = 104.666666
    assert (panel.legs[0].value, panel.legs[0].tier, panel.legs[0].passed) == (Decimal("104.666666"), 1, [])


def test_a_tick_reads_no_progress_for_a_last_rule_or_before_the_window_opens(users, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the progress was read")

    timed(users, {"rule": "last"}, sid="plain")
    timed(users, LADDER, sid="fix")
    put("plain", -10, everywhere(100))
    put("fix", -1000, everywhere(100), 10)
    clock.set_time(T2 - dt.timedelta(seconds=600))  # the ladder's window opens at t2 - 300
    monkeypatch.setattr(fixings.fixing, "progress", never)
    for sid in ("plain", "fix"):
        pushed = tick_push(sid)
        assert 'id="legs"' in pushed and 'id="fixing"' not in pushed
    # The page still says the rule in words, and when the window opens.
    assert "The last price at or before t2" in page(users["bob"], "floor", "plain")
    assert "its progress shows here once it opens" in page(users["bob"], "floor", "fix")


def test_a_settlement_waiting_for_a_price_says_per_leg_and_tier_what_is_missing(users, settings):
    settings.ALLOW_MANUAL_SETTLE = True
    rule = {
        "rule": "fallback",
        "tiers": [
            {"rule": "composite", "inner": {"rule": "last"}, "sources": ["a", "b"], "min_sources": 2},
            {"rule": "vwap", "window": 60, "source": "a"},
        ],
    }
    timed(users, rule)
    put("fix", -20, everywhere(100), source="a")  # no volume, and nothing from b
    clock.set_time(T2 + dt.timedelta(seconds=1))
    services.run_due()
    session = Session.objects.get(id="fix")
    assert session.status == Session.Status.CLOSED and session.waiting_reason
    panel = fixings.fixing_panel(session)
    assert panel.state == "closed" and not panel.live
    missing = panel.legs[0].missing
    assert [(t.number, t.rule) for t in missing] == [(1, "composite"), (2, "vwap")]
    assert missing[0].reason.startswith("composite: 1 source(s) answered within the deviation, 2 needed")
    assert missing[1].reason == "vwap: volume 0 in the window"
    for name in ("floor", "monitor"):
        html = page(users["org"], name)
        assert "The settlement waits for its fixing." in html and session.waiting_reason in html, name
        assert "vwap: volume 0 in the window" in html and "b: last: no tick" in html, name
        assert "The organiser may settle by hand at prices given" in html, name
        assert "manage.py settle fix --price LEG=VALUE" in html, name
    settings.ALLOW_MANUAL_SETTLE = False
    assert "Settling by hand is off here (ALLOW_MANUAL_SETTLE=false)" in page(users["org"], "monitor")


def test_a_centred_window_still_open_says_the_organiser_may_end_it_by_hand(users, settings):
    settings.ALLOW_MANUAL_SETTLE = True
    timed(users, {"rule": "median", "window": 60, "after": 30})
    put("fix", -10, everywhere(100))
    put("fix", 4, everywhere(104))
    clock.set_time(T2 + dt.timedelta(seconds=5))
    services.run_due()
    panel = fixings.fixing_panel(Session.objects.get(id="fix"))
    assert panel.state == "running" and "window to close at" in panel.waiting
    assert (panel.legs[0].ticks, panel.legs[0].value) == (2, 100)  # the lower middle of 100 and 104
    html = page(users["org"], "floor")
    assert "The organiser may settle by hand now" in html and "the window then ends at that moment" in html
    assert 'id="fixing"' in tick_push("fix")  # after t2, up to the window's end, ticks still move it


def test_the_settle_preview_says_the_rule_in_words(users):
    timed(users, LADDER)
    put("fix", -100, everywhere(100), 2000)
    clock.set_time(T2 + dt.timedelta(seconds=1))
    client = Client()
    client.force_login(users["org"])
    for name in ("settle", "monitor_settle"):
        html = client.get(reverse(f"markets:{name}", args=["fix"]), HTTP_HX_REQUEST="true").content.decode()
        assert "the VWAP over the 300 s before t2 (at least 1000 traded); if that cannot be made" in html, name
        assert "Confirm settlement" in html


def test_the_results_page_shows_the_fixing_record(users):
    timed(users, LADDER)
    put("fix", -200, everywhere(100), 400)
    put("fix", -100, {"AAPL": 104, "NVDA": 104, "META": 104}, 800)  # ORCL: 400 traded, not enough
    put("fix", -50, {"ORCL": 99})
    clock.set_time(T2 + dt.timedelta(seconds=1))
    services.run_due()
    settlement = Session.objects.get(id="fix").settlement
    html = page(users["alice"], "results")
    assert "The VWAP over the 300 s before t2 (at least 1000 traded); if that cannot be made, the last price" in html
    assert 'window <span class="mono">15:55:00 \u2013 16:00:00</span> UTC' in html
    shown = fixings.record_view(settlement.fixing, list(LEGS))
    aapl = shown["legs"][0]
    # (100 x 400 + 104 x 800) / 1200 = 102.666666
    assert (aapl["value"], aapl["tier"], aapl["rule"], aapl["count"], aapl["volume"]) == (
        Decimal("102.666666"),
        1,
        "vwap",
        2,
        1200,
    )
    orcl = shown["legs"][3]
    assert (orcl["value"], orcl["tier"], orcl["rule"], orcl["count"]) == (99, 2, "last", 1)
    assert [p.reason for p in orcl["passed"]] == ["vwap: volume 400 in the window, 1000 needed"]
    assert "vwap: volume 400 in the window, 1000 needed" in html
    ids = " ".join(str(i) for i in settlement.fixing["legs"]["AAPL"]["used"])
    assert f'data-testid="fixing-ids-AAPL">{ids}</span>' in html and "<details" in html


def test_the_record_of_a_composite_names_its_sources_and_the_outlier_dropped(users):
    settle_with_an_outlier(users)
    html = page(users["bob"], "results")
    assert "dropping those more than 2% from the median" in html
    meta = html.split('data-testid="fixing-leg-META"', 1)[1].split("</tr>", 1)[0]
    assert 'a <span class="sub num">100</span>, b <span class="sub num">101</span>' in meta
    assert '<span class="down">c</span> <span class="sub num">150</span>' in meta


def test_old_records_and_manual_prices_still_render(users):
    create_demo(users, "old")
    services.settle_session(users["org"], "old", prices={"AAPL": "1", "NVDA": "2", "META": "3", "ORCL": "4"})
    html = page(users["alice"], "results", "old")
    assert "Prices given by hand" in html and "settled at prices given by hand" in html
    old = {"rule": {"rule": "last"}, "at": T2.isoformat(), "ticks": {"AAPL": [7, 9]}, "source": "oracle"}
    shown = fixings.record_view(old, ["AAPL", "NVDA"])
    assert shown["described"] == "the last price at or before t2" and not shown["detailed"]
    assert [(leg["leg"], leg["count"], leg["old"]) for leg in shown["legs"]] == [("AAPL", 2, True), ("NVDA", 0, True)]
    # The page renders it: the settlement's record replaced by the old shape.
    from markets.models import Settlement

    Settlement.objects.filter(session_id="old").update(fixing=old)
    html = page(users["alice"], "results", "old")
    assert "The last price at or before t2" in html and "recorded before fixings said their tiers" in html
    assert 'data-testid="fixing-ids-AAPL">7 9</span>' in html
