"""A batch session's floor through Django's client: the session form (mechanism and batch settings, decimal
commas, inline errors), order entry and cancel with what they did said next to the form, the organiser's
"Clear now", the last batch and the history, sealed orders kept from everyone but their owner, and the
monitor's resting orders and batches. The pushes are in test_batch_push.py, a class in Chromium in
test_batch_browser.py."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.urls import reverse

from conftest import create_demo
from ledger import clock
from ledger.models import Event
from markets import services
from markets.models import Batch, Fill, Holding, Order, Session
from markets.tests.test_views import HX, client_for
from oracle.models import Tick

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.UTC)
PRICES = {"AAPL": 190_000_000, "NVDA": 475_000_000, "META": 350_000_000, "ORCL": 100_000_000}


def tick(session_id: str, prices: dict[str, int] = PRICES) -> None:
    Tick.objects.bulk_create(
        Tick(session_id=session_id, symbol=s, at=clock.now(), price=p, source="test") for s, p in prices.items()
    )


@pytest.fixture
def auction(users):
    """A batch session (10 s cuts) opened at T0 with the oracle's prices: alice and bob trade, mm and mm2
    make, each holding a quarter of q = [100, 60, 80, 120]."""
    clock.set_time(T0)
    create_demo(users, "auc", mechanism="batch", batch_seconds=10)
    tick("auc")
    return Session.objects.get(id="auc")


def text(response) -> str:
    return html.unescape(response.content.decode())


def floor(user, session_id: str = "auc") -> str:
    return text(client_for(user).get(reverse("markets:floor", args=[session_id])))


def place(user, session_id: str = "auc", **typed):
    data = {"give_leg": "AAPL", "get_leg": "NVDA", "quantity": "10", "limit_rate": "0.39", "life": "once"} | typed
    return client_for(user).post(reverse("markets:order_place", args=[session_id]), data, **HX)


# ---------------------------------------------------------------- the session form

FORM = {
    "session_id": "cls",
    "legs": "AAPL, NVDA",
    "q": "100, 60",
    "start_mode": "immediate",
    "end_mode": "manual",
    "allocation_mode": "pro_rata",
    "fixing_rule": "last",
    "visibility": "public",
}


def test_the_session_form_creates_a_batch_session_reading_decimal_commas(users):
    form = FORM | {
        "mechanism": "batch",
        "batch_seconds": "15",
        "batch_band": "0,05",
        "max_orders": "5",
        "min_order": "0,5",
    }
    response = client_for(users["org"]).post(reverse("markets:session_list"), form)
    assert response.status_code == 302, text(response)
    s = Session.objects.get(id="cls")
    assert (s.mechanism, s.batch_seconds, s.batch_band, s.max_orders, s.min_order) == ("batch", 15, "0.05", 5, 500_000)
    listed = text(client_for(users["alice"]).get(reverse("markets:session_list")))
    assert re.search(r'data-testid="mechanism-cls">batch auction every 15 s<', listed)
    before = floor(users["org"], "cls")  # nobody has joined or been given anything yet
    assert 'id="orders"' not in before and "The first batch clears 15 s after the organiser opens" in before


def test_an_rfq_session_ignores_the_batch_fields_the_form_shows_by_default(users):
    form = FORM | {"mechanism": "rfq", "batch_seconds": "10", "batch_band": "0.10", "max_orders": "20"}
    assert client_for(users["org"]).post(reverse("markets:session_list"), form).status_code == 302
    assert Session.objects.get(id="cls").mechanism == "rfq"


def test_the_form_offers_the_mechanism_and_its_settings_with_their_defaults(users):
    page = text(client_for(users["org"]).get(reverse("markets:session_list")))
    assert '<option value="both">Both (RFQs and batch auctions)</option>' in page
    for name, value in (("batch_seconds", "10"), ("batch_band", "0.10"), ("max_orders", "20"), ("min_order", "0.01")):
        assert re.search(rf'name="{name}" value="{re.escape(value)}"', page), name
    assert page.count('class=" batch-only"') == 4


@pytest.mark.parametrize(
    ("field", "typed", "said"),
    [
        ("batch_seconds", "0", "Seconds per batch must be a whole number from 1 to 3,600"),
        ("batch_seconds", "2.5", "Seconds per batch must be a whole number from 1 to 3,600"),
        ("batch_band", "0,6", "The price band must be more than 0 and at most 1/2"),
        ("batch_band", "1,000", "The price band is ambiguous"),
        ("max_orders", "0", "Resting orders per person must be a whole number from 1 to 1,000"),
        ("min_order", "0,0000001", "The smallest order has more than 6 decimal places"),
    ],
)
def test_bad_batch_settings_are_said_beside_their_field_and_nothing_is_written(users, field, typed, said):
    response = client_for(users["org"]).post(
        reverse("markets:session_list"), FORM | {"mechanism": "both", field: typed}, **HX
    )
    page = text(response)
    label = re.search(
        rf'<label class="has-error batch-only">[^<]*<input[^>]*name="{field}"[^>]*>\s*<span class="error">([^<]*)', page
    )
    assert label, page
    assert label.group(1).startswith(said)
    assert not Session.objects.filter(id="cls").exists() and not Event.objects.exists()


# ---------------------------------------------------------------- the floor


def test_a_batch_floor_has_order_entry_the_countdown_and_no_rfq_board(users, auction):
    page = floor(users["alice"])
    assert 'data-testid="order-form"' in page and 'data-testid="rfq-form"' not in page
    assert re.search(r'<section id="board" class="card hidden"', page)
    assert f'data-cut="{int((T0 + dt.timedelta(seconds=10)).timestamp() * 1000)}"' in page
    assert "Batch 1 clears" in page and "09:00:10 UTC" in page
    assert 'data-testid="clear-now"' in page  # shown to the organiser only (.organiser-only)
    assert "data-organiser" not in page
    assert "No batch yet. The first clears at 09:00:10 UTC." in page
    # Held, reserved and available per leg: alice holds a quarter of each leg.
    assert re.search(r'data-testid="available-AAPL">25<', page)
    assert "batch auction every 10 s" in page


def test_a_session_with_both_keeps_the_rfq_board_beside_order_entry_and_rfq_sessions_have_neither(users):
    clock.set_time(T0)
    create_demo(users, "mixed", mechanism="both")
    page = floor(users["alice"], "mixed")
    assert 'data-testid="order-form"' in page and 'data-testid="rfq-form"' in page
    assert "RFQs and batch auctions every 10 s" in page
    create_demo(users, "plain")
    page = floor(users["alice"], "plain")
    assert 'id="orders"' not in page and 'data-testid="order-form"' not in page
    assert re.search(r'<section id="cut" class="card cut hidden"', page)


def test_before_the_opening_and_after_the_settlement_the_order_panel_says_why_there_is_no_form(users):
    clock.set_time(T0)
    create_demo(users, "early", open_it=False, mechanism="batch")
    page = floor(users["alice"], "early")
    assert 'data-testid="orders-not-yet"' in page and 'data-testid="order-form"' not in page
    assert 'data-testid="my-available"' not in page  # nothing held yet
    services.open_session(users["org"], "early")
    tick("early")
    services.place_order(users["alice"], "early", "AAPL", "NVDA", "3", "0.39", gtc=True)
    services.settle_session(users["org"], "early")
    page = floor(users["alice"], "early")
    assert 'data-testid="orders-over"' in page and "No resting orders." in page
    assert re.search(r'data-testid="available-AAPL">25<', page)  # the lapsed order reserves nothing
    assert 'data-testid="cut-over"' in page


def test_the_organiser_and_watchers_get_no_order_panel(users, auction):
    assert 'id="orders"' not in floor(users["org"])
    assert 'id="orders"' not in floor(users["eve"])
    assert 'data-testid="order-form"' in floor(users["bob"])


def test_placing_an_order_says_what_was_placed_and_shows_it_reserved(users, auction):
    response = place(users["alice"], quantity="10", limit_rate="0,39")  # a decimal comma, as phones type it
    panel = text(response)
    order = Order.objects.get()
    assert (order.quantity, order.limit_rate, order.batches_left) == (10_000_000, 39_000_000, 1)
    notice = re.search(
        r'<p class="notice" role="status" data-testid="order-notice" data-kept data-in="orders">([^<]*)', panel
    )
    assert notice, panel
    assert notice.group(1) == (
        f"Order placed: give up to 10 AAPL for NVDA at 0.39 or better, next batch only (order {order.id}, sealed "
        "until its batch clears)"
    )
    assert re.search(rf'<tr id="order-{order.id}"', panel)
    assert re.search(r'data-testid="available-AAPL">15<', panel)  # 25 held, 10 reserved


@pytest.mark.parametrize(
    ("typed", "batches_left"), [({"life": "gtc"}, None), ({"life": "batches", "good_for": "3"}, 3)]
)
def test_the_lifetime_is_chosen_on_the_form(users, auction, typed, batches_left):
    place(users["alice"], **typed)
    assert Order.objects.get().batches_left == batches_left
    life = "until cancelled" if batches_left is None else "3 batches"
    assert life in floor(users["alice"])


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ({"quantity": "30"}, "Not enough available: you hold 25.000000 AAPL, 0.000000 reserved by your resting orders"),
        ({"quantity": "lots"}, "Quantity must be a number, not 'lots'"),
        ({"limit_rate": "1,000"}, "The limit rate is ambiguous"),
        ({"quantity": "0.001"}, "An order gives at least 0.010000 AAPL here"),
        ({"get_leg": "AAPL"}, "The give leg and the get leg must differ"),
        ({"life": "batches", "good_for": ""}, "Say for how many batches the order lives"),
        ({"life": "batches", "good_for": "0"}, "good_for must be a whole number"),
    ],
)
def test_a_refused_order_is_said_next_to_the_form_and_writes_nothing(users, auction, typed, said):
    before = Event.objects.count()
    panel = text(place(users["alice"], **typed))
    error = re.search(r'data-testid="order-error" data-kept data-after="order-form">([^<]*)', panel)
    assert error, panel
    assert error.group(1).startswith(said), error.group(1)
    assert Event.objects.count() == before


def test_cancel_frees_the_reservation_and_only_the_owner_may(users, auction):
    place(users["alice"])
    order = Order.objects.get()
    refused = text(client_for(users["bob"]).post(reverse("markets:order_cancel", args=[order.id]), **HX))
    assert "Only the order" in refused and Order.objects.get().status == "resting"
    panel = text(client_for(users["alice"]).post(reverse("markets:order_cancel", args=[order.id]), **HX))
    assert f"Order {order.id} cancelled: 10 AAPL no longer reserved" in panel
    assert "No resting orders." in panel
    assert Holding.objects.get(participant__username="alice", leg="AAPL").reserved == 0


def test_a_cancel_refused_at_the_cut_is_said_in_the_orders_row(users, auction):
    place(users["alice"], life="gtc")
    order = Order.objects.get()
    clock.set_time(T0 + dt.timedelta(seconds=10))
    panel = text(client_for(users["alice"]).post(reverse("markets:order_cancel", args=[order.id]), **HX))
    row = re.search(
        rf'<tr class="kept-row" data-kept data-after="order-{order.id}" data-in="orders" data-context="Order {order.id}">'
        r'<td colspan="6"><p class="error" role="alert" data-testid="order-error">([^<]*)',
        panel,
    )
    assert row, panel
    assert "clearing now: it can no longer be cancelled" in row.group(1)


def test_orders_are_sealed_on_every_floor_but_their_owners(users, auction):
    place(users["alice"], quantity="7.5", limit_rate="0.3917")
    order = Order.objects.get()
    for other in ("bob", "mm", "eve"):
        page = floor(users[other])
        assert "0.3917" not in page and "7.5" not in page, other
        assert f"order {order.id}: sealed until its batch clears" in page
    mine = floor(users["alice"])
    assert re.search(
        rf'<tr id="order-{order.id}"[^>]*><td class="mono sub">#{order.id}</td><td class="num">7.5</td>', mine
    )
    assert "0.3917" in mine


def test_the_organiser_clears_now_and_every_floor_shows_the_batch(users, auction):
    place(users["alice"], quantity="10", limit_rate="0.39")
    place(users["mm"], give_leg="NVDA", get_leg="AAPL", quantity="4", limit_rate="2.45")
    clock.set_time(T0 + dt.timedelta(seconds=4))
    refused = text(client_for(users["alice"]).post(reverse("markets:batch_clear", args=["auc"]), **HX))
    assert 'data-testid="cut-error"' in refused and not Batch.objects.exists()
    said = text(client_for(users["org"]).post(reverse("markets:batch_clear", args=["auc"]), **HX))
    batch = Batch.objects.get()
    assert batch.outcome == "cleared" and batch.filled == 2
    notice = re.search(r'data-testid="cut-notice" data-kept data-in="cut">([^<]*)', said)
    assert notice.group(1) == f"Batch 1 cleared now: 2 of 2 orders filled, volume {batch_volume(batch)}"
    assert "Batch 2 clears" in said  # the next cut: one period after this one
    for who in ("alice", "bob", "org"):
        page = floor(users[who])
        assert 'data-testid="last-batch-number">batch 1<' in page
        for leg in ("AAPL", "NVDA"):
            assert re.search(
                rf'data-testid="batch-price-{leg}"[^>]*><strong>{batch.prices[leg] / 1e6:.2f}</strong>', page
            ), leg
        assert re.search(r'data-testid="batch-filled">2 <span class="sub">of 2</span>', page)
    fills = floor(users["alice"]).split('data-testid="my-fills"')[1].split("</table>")[0]
    gave = (
        Order.objects.get(participant__username="alice").quantity
        - Order.objects.get(participant__username="alice").rest
    )
    assert re.search(rf'<td class="num mono">1</td><td class="num">{gave / 1e6:g}</td><td>AAPL</td>', fills), fills
    assert "No fills yet." in floor(users["bob"]).split('data-testid="my-fills"')[1]
    # Revealed now: the log shows the filled orders whole.
    assert "alice gives up to 10 AAPL for NVDA at 0.39 or better" in floor(users["bob"])


def batch_volume(batch: Batch) -> str:
    from decimal import Decimal

    return f"{Decimal(batch.volume):,.2f}"


def test_the_batch_history_and_its_pages(users, auction):
    for k in range(1, 13):
        clock.set_time(T0 + dt.timedelta(seconds=10 * k))
        services.clear_batch(None, "auc")
    page = floor(users["bob"])
    history = page.split('data-testid="batch-history"')[1].split("</table>")[0]
    assert [int(n) for n in re.findall(r'<tr id="batch-(\d+)"', history)] == list(range(12, 2, -1))
    assert "all 12 →" in page
    listing = text(client_for(users["bob"]).get(reverse("markets:batches", args=["auc"])))
    assert listing.count("No order rests at the cut") == 12
    older = text(client_for(users["bob"]).get(reverse("markets:batches", args=["auc"]) + "?before=5"))
    assert re.findall(r'<tr><td class="num mono">(\d+)</td>', older) == ["4", "3", "2", "1"]
    assert client_for(users["bob"]).get(reverse("markets:batches", args=["auc"]) + "?before=x").status_code == 400


def test_the_monitor_shows_resting_orders_and_reserves_but_no_limits_and_each_batch_volume(users, auction):
    place(users["alice"], quantity="10", limit_rate="0.3917")
    place(users["alice"], give_leg="META", get_leg="ORCL", quantity="2", limit_rate="3.4567", life="gtc")
    place(users["mm"], give_leg="NVDA", get_leg="AAPL", quantity="4", limit_rate="2.45")
    page = text(client_for(users["org"]).get(reverse("markets:monitor", args=["auc"])))
    assert re.search(r'data-testid="resting-alice">2<', page)
    reserved = re.search(r'data-testid="reserved-alice">(.*?)</td>', page).group(1)
    assert re.sub(r"<[^>]+>", "", reserved) == "10 AAPL2 META"
    assert re.search(r'data-testid="resting-count">3<', page)
    assert "0.3917" not in page and "3.4567" not in page
    clock.set_time(T0 + dt.timedelta(seconds=10))
    batch = services.clear_batch(None, "auc")
    page = text(client_for(users["org"]).get(reverse("markets:monitor_live", args=["auc"])))
    row = re.search(r'data-testid="monitor-batch-1">(.*?)</tr>', page).group(1)
    assert "2/3" in row and batch_volume(batch) in row
    assert re.search(r'data-testid="resting-alice">1<', page)  # the gtc order rests on
    assert re.search(r'data-testid="fills-alice">1<', page) and re.search(r'data-testid="fills-bob">·<', page)
    given = sum(f.given for f in Fill.objects.filter(give_leg="AAPL"))
    volume = re.search(r'data-testid="monitor-volume">(.*?)</table>', page, re.S).group(1)
    assert f'<th>AAPL</th><td class="num">{given / 1e6:.6f}</td>' in volume
    assert "Open RFQs" not in page and "as taker" not in page  # a batch session has neither


def test_the_organiser_clears_from_the_monitor_too_and_nobody_else_may(users, auction):
    url = reverse("markets:monitor_clear", args=["auc"])
    assert client_for(users["alice"]).post(url, **HX).status_code == 403
    assert not Batch.objects.exists()
    page = text(client_for(users["org"]).get(reverse("markets:monitor", args=["auc"])))
    assert re.search(r'data-testid="monitor-clear-now"[^>]*>Clear batch 1 now<', page)
    answer = text(client_for(users["org"]).post(url, **HX))
    assert Batch.objects.get().number == 1
    assert re.search(r'data-testid="monitor-batch-1"', answer) and "Clear batch 2 now" in answer


def test_a_timed_session_says_when_no_batch_will_clear_before_t2(users):
    clock.set_time(T0)
    create_demo(users, "short", mechanism="batch", batch_seconds=60, end_mode="timed", t2=T0 + dt.timedelta(seconds=90))
    tick("short")
    assert "Batch 1 clears" in floor(users["alice"], "short")
    clock.set_time(T0 + dt.timedelta(seconds=60))
    services.clear_batch(None, "short")  # the next cut, at 120 s, would fall after t2
    page = floor(users["alice"], "short")
    assert "No more batches: trading closes at t2 (09:01:30 UTC) before the next cut" in page
    assert 'data-testid="cut-countdown"' not in page
