"""Sealed orders on the JSON stream (`consumers.StreamConsumer`): its events go to one group that every
viewer of a session shares, so each socket seals others' orders itself before sending, as the API's events
page does (`selectors.sealed`): an order still resting, or cancelled, reads `{"order_id", "sealed": true}`
to anyone but its owner, the organiser, staff and auditors."""

from __future__ import annotations

from markets.models import Order
from markets.selectors import sealed
from markets.selectors.api import sealed_json

SEAL_IDS = 500  # at most this many orders named in one read of which are sealed (a longer backlog reads all)


def foreign(item: dict, seal: sealed.Seal) -> bool:
    """An order event that `seal`'s viewer may not read whole if the order is still sealed."""
    if item["type"] != "event" or item["event"]["type"] not in sealed.SEALED_TYPES or seal.all:
        return False
    return item["event"]["payload"].get("user_id") != seal.user_id


def needs_sealing(items: list[dict], seal: sealed.Seal) -> bool:
    return any(foreign(item, seal) for item in items)


def seal_items(session_id: str, seal: sealed.Seal, items: list[dict]) -> list[dict]:
    """The items as `seal`'s viewer may read them, the orders as they stand now (one read of those
    concerned): one a batch filled meanwhile is sent whole, as the API's log shows it. Sync (database)."""
    named = {item["event"]["payload"].get("order_id") for item in items if foreign(item, seal)}
    if not named:
        return items
    orders = Order.objects.filter(session_id=session_id, status__in=sealed.HIDDEN)
    if len(named) <= SEAL_IDS:
        orders = orders.filter(id__in=named)
    hidden = set(orders.values_list("id", flat=True)) & named
    now = sealed.Seal(session_id, hidden=hidden)  # only others' orders are in `hidden`
    return [{**item, "event": sealed_json(item["event"], now)} if item["type"] == "event" else item for item in items]
