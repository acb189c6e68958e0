"""The JSON stream (`/ws/sessions/<id>`) of a batch session: its events are sent to a group every viewer
shares, so each socket seals others' orders itself, in the backlog and live, as the API's log does: an
outsider reads `{"order_id", "sealed": true}`, the owner its own orders whole, the organiser and auditors
everything; a batch that cleared reveals what it filled."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async

from conftest import create_demo
from ledger import clock
from markets import services, tokens
from markets.tests.test_batch_service import T0, tick
from markets.tests.test_consumers import in_thread
from markets.tests.test_stream import stream

pytestmark = pytest.mark.django_db(transaction=True)


async def orders_seen(comm, until: str, count: int = 1, timeout: float = 5.0) -> dict[tuple[int, str], dict]:
    """Order events as this socket reads them, by (order id, type), until `count` events of type `until`."""
    seen: dict[tuple[int, str], dict] = {}
    while count:
        item = await comm.receive_json_from(timeout=timeout)
        if item["type"] != "event":
            continue
        event = item["event"]
        if event["type"] in ("OrderPlaced", "OrderCancelled"):
            seen[(event["payload"]["order_id"], event["type"])] = event["payload"]
        if event["type"] == until:
            count -= 1
    return seen


def setup(users) -> dict[str, str]:
    clock.set_time(T0)
    create_demo(users, "auc", mechanism="batch", batch_seconds=10)
    tick("auc", T0)
    return {name: tokens.create_token(users[name])[1] for name in ("org", "alice", "mm", "eve")}


async def test_each_socket_reads_others_orders_sealed_live_and_in_the_backlog(users):
    keys = await sync_to_async(setup)(users)
    ask = await sync_to_async(services.place_order)(users["alice"], "auc", "AAPL", "NVDA", "10", "0.39")
    socks = {}
    for who in ("org", "alice", "mm", "eve"):
        socks[who] = await stream("/ws/sessions/auc", keys[who])
        assert (await socks[who].connect())[0]
    backlog = {who: await orders_seen(comm, "OrderPlaced") for who, comm in socks.items()}
    whole = backlog["org"][(ask.id, "OrderPlaced")]
    assert whole["limit_rate"] == 39_000_000 and whole["user_id"] == users["alice"].pk
    assert backlog["alice"][(ask.id, "OrderPlaced")] == whole  # its owner
    for who in ("mm", "eve"):
        assert backlog[who][(ask.id, "OrderPlaced")] == {"order_id": ask.id, "sealed": True}

    # Live: one order each way, one cancelled; every socket gets the same group message, sealed its own way.
    bid = await sync_to_async(in_thread)(services.place_order, users["mm"], "auc", "NVDA", "AAPL", "4", "2.45")
    gone = await sync_to_async(in_thread)(services.place_order, users["mm"], "auc", "NVDA", "META", "1", "9")
    await sync_to_async(in_thread)(services.cancel_order, users["mm"], gone.id)
    live = {who: await orders_seen(comm, "OrderCancelled") for who, comm in socks.items()}
    assert live["org"][(bid.id, "OrderPlaced")]["limit_rate"] == 245_000_000
    assert live["mm"] == live["org"]  # mm's own orders, whole
    for who in ("alice", "eve"):
        assert set(live[who]) == {(bid.id, "OrderPlaced"), (gone.id, "OrderPlaced"), (gone.id, "OrderCancelled")}
        assert all(payload == {"order_id": k[0], "sealed": True} for k, payload in live[who].items())

    # The cut reveals what it filled; a socket that (re)connects from the start reads them whole, and the
    # cancelled order, which never met the market, still sealed.
    clock.set_time(T0 + dt.timedelta(seconds=10))
    await sync_to_async(in_thread)(services.clear_batch, None, "auc")
    for comm in socks.values():
        await orders_seen(comm, "BatchCleared")
        await comm.disconnect()
    again = await stream("/ws/sessions/auc", keys["eve"])
    assert (await again.connect())[0]
    seen = await orders_seen(again, "BatchCleared")
    assert seen[(ask.id, "OrderPlaced")] == whole
    assert seen[(bid.id, "OrderPlaced")] == live["org"][(bid.id, "OrderPlaced")]
    assert seen[(gone.id, "OrderCancelled")] == {"order_id": gone.id, "sealed": True}
    await again.disconnect()
