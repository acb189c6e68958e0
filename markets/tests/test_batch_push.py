"""A batch session's floor, live: what its sockets are pushed when an order is placed or cancelled (only the
owner's own panel, and the log's row sealed for everyone) and when a batch clears (every floor: the batch,
the holdings, each holder's own orders and fills), from another writer, as the floor consumer sends them."""

from __future__ import annotations

import html
import re

import pytest
from asgiref.sync import sync_to_async

from conftest import create_demo
from ledger import clock
from markets import services
from markets.push import panels
from markets.tests.test_consumers import connect, in_thread, receive_until
from oracle.models import Tick

PRICES = {"AAPL": 190_000_000, "NVDA": 475_000_000, "META": 350_000_000, "ORCL": 100_000_000}


def _event(seq: int, version: int, type_: str, **payload) -> dict:
    return {"seq": seq, "version": version, "type": type_, "payload": payload}


def test_an_order_makes_only_its_owners_panel_stale_and_a_cut_the_whole_floor():
    assert panels.stale({"OrderPlaced"}) == {"status", "events", "orders"}
    assert panels.stale({"OrderCancelled"}) == {"status", "events", "orders"}
    assert panels.stale({"BatchCleared"}) == panels.EVERYTHING >= {"cut", "batch", "orders", "holdings"}
    change = panels.delta(
        [
            _event(10, 4, "OrderPlaced", order_id=7, user_id=21),
            _event(11, 5, "OrderCancelled", order_id=3, user_id=22),
            _event(12, 6, "TradeExecuted", trade_id=1, rfq_id=2, quote_id=3, taker_id=23, maker_id=24),
        ]
    )
    assert change.owners == {21, 22, 23, 24} and change.users == {23, 24}
    # A copy of the event that names no owner (sealed) cannot say whose panel changed: the whole floor goes.
    assert panels.delta([_event(10, 4, "OrderPlaced", order_id=7, sealed=True)]) is None


def auction(users) -> None:
    create_demo(users, "demo", mechanism="batch", batch_seconds=3600)
    Tick.objects.bulk_create(
        Tick(session_id="demo", symbol=s, at=clock.now(), price=p, source="test") for s, p in PRICES.items()
    )


async def opened(user):
    """A connected floor socket with its first floor (and, for a holder, their own panels) read."""
    comm = await connect(user)
    assert (await comm.connect())[0]
    first = [html.unescape(await comm.receive_from(timeout=5))]
    return comm, first + await quiet(comm)


async def quiet(comm, seconds: float = 0.6) -> list[str]:
    """Everything the socket is sent until it has been sent nothing for `seconds` (a receive that times out
    would end the socket: `receive_nothing` does not)."""
    got = []
    while not await comm.receive_nothing(timeout=seconds):
        got.append(html.unescape(await comm.receive_from(timeout=1)))
    return got


@pytest.mark.django_db(transaction=True)
async def test_an_order_is_pushed_to_its_owner_only_and_sealed_in_everyones_log(users):
    await sync_to_async(auction)(users)
    alice, first = await opened(users["alice"])
    assert any('id="orders"' in m and 'data-testid="order-form"' in m for m in first)
    bob, first_bob = await opened(users["bob"])
    org, first_org = await opened(users["org"])
    assert any('id="orders"' in m for m in first_bob)  # his own, empty
    assert not any('id="orders"' in m for m in first_org)  # the organiser places no order

    order = await sync_to_async(in_thread)(
        services.place_order, users["alice"], "demo", "AAPL", "NVDA", "7.5", "0.3917", gtc=True
    )
    mine, _ = await receive_until(alice, f'id="order-{order.id}"')
    assert 'id="orders"' in mine and "0.3917" in mine and "until cancelled" in mine
    assert 'data-testid="available-AAPL">17.5<' in mine  # 25 held, 7.5 reserved
    for comm in (bob, org):  # the organiser may read orders in the log's own pages; the floor's log is everyone's
        row, _ = await receive_until(comm, f"order {order.id}: sealed until its batch clears")
        others = [row, *await quiet(comm)]
        assert not any('id="orders"' in m or "0.3917" in m or "7.5" in m for m in others)

    await sync_to_async(in_thread)(services.cancel_order, users["alice"], order.id)
    freed, _ = await receive_until(alice, 'data-testid="available-AAPL">25<')
    assert "No resting orders." in freed
    assert not any('id="orders"' in m for m in await quiet(bob))
    for comm in (alice, bob, org):
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_cleared_batch_reaches_every_floor_with_its_prices_fills_and_holdings(users):
    await sync_to_async(auction)(users)
    ask = await sync_to_async(services.place_order)(users["alice"], "demo", "AAPL", "NVDA", "10", "0.39")
    await sync_to_async(services.place_order)(users["mm"], "demo", "NVDA", "AAPL", "4", "2.45")
    alice, _ = await opened(users["alice"])
    bob, _ = await opened(users["bob"])
    mm, _ = await opened(users["mm"])

    batch = await sync_to_async(in_thread)(services.clear_batch, users["org"], "demo")
    assert batch.filled == 2
    for comm in (alice, bob, mm):
        floor, _ = await receive_until(comm, 'data-testid="last-batch-number">batch 1<')
        for leg in ("AAPL", "NVDA"):
            assert re.search(
                rf'data-testid="batch-price-{leg}"[^>]*><strong>{batch.prices[leg] / 1e6:.2f}</strong>', floor
            )
        assert "Batch 2 clears" in floor  # the countdown moved on to the next cut
        assert "alice gives up to 10 AAPL for NVDA at 0.39" in floor  # revealed in the log now
    own, _ = await receive_until(alice, 'data-testid="my-fills"')
    assert '<tr class="last"><td class="num mono">1</td>' in own
    assert "No resting orders." in own or f'id="order-{ask.id}"' in own  # filled whole, or its rest expired
    position, _ = await receive_until(mm, 'data-testid="my-holdings"')
    assert "15<" not in position.split('data-testid="my-holdings"')[1].split("</tr>")[1]  # mm's NVDA moved from 15
    bobs = await quiet(bob)
    assert not any('<tr class="last">' in m for m in bobs)
    for comm in (alice, bob, mm):
        await comm.disconnect()
