"""What the floor pushes, and when: handlers for the ledger feed's two sources.

New ledger events (any process) -> re-render the session's shared panels once and send them to its
group; new oracle ticks -> re-render prices, values and the invariants once. Consumers add the RFQ
board per viewer from the shared data, so no browser costs an extra database read.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, defaultdict
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db.models import Max
from django.template.loader import render_to_string

from ledger.feed import closing, feed
from ledger.models import Event
from markets import domain, projections, selectors
from markets.models import Participant, Session
from oracle.models import Tick

BATCH = 1000
FLOOR = "markets/floor.html"


def group_name(session_id: str) -> str:
    return f"floor.{session_id}"


def render_panels(session_id: str, partial: str = "push") -> dict[str, Any]:
    """Shared panels as out-of-band HTML plus the RFQ board's data, read once per batch."""
    context = selectors.floor_context(session_id)
    html = render_to_string(f"{FLOOR}#{partial}", context | {"oob": True})
    board = selectors.board_data(context["session"]) if partial == "push" else None
    return {"html": html, "board": board, "seq": context["last_seq"], "session": context["session"]}


def _render_if_exists(session_id: str, partial: str) -> dict[str, Any] | None:
    if not Session.objects.filter(id=session_id).exists():
        return None
    return render_panels(session_id, partial)


def render_board(panels: dict[str, Any], me: Participant | None) -> str:
    """The board for one viewer, from the batch's shared data: no database read per browser, and
    rendered once per batch for each participant and once for all watchers."""
    key = me.username if me is not None else None
    boards = panels.setdefault("boards", {})
    if key not in boards:
        context = {
            "session": panels["session"],
            "board": panels["board"],
            "me": me,
            "is_organiser": bool(me and me.role == Participant.Role.ORGANISER),
            "oob": True,
        }
        boards[key] = render_to_string(f"{FLOOR}#board", context)
    return boards[key]


# Batches are handed to this process's consumers by reference: the in-memory channel layer deep-copies
# every message for every socket, which for 500 sockets would copy the rendered floor 500 times.
_BATCHES: OrderedDict[int, dict[str, Any]] = OrderedDict()
_KEEP_BATCHES = 64
_batch_ids = itertools.count(1)


def publish(panels: dict[str, Any]) -> int:
    batch = next(_batch_ids)
    _BATCHES[batch] = panels
    while len(_BATCHES) > _KEEP_BATCHES:
        _BATCHES.popitem(last=False)
    return batch


def published(batch: int) -> dict[str, Any] | None:
    """A batch by its number, or None when it is gone (then the consumer re-renders itself)."""
    return _BATCHES.get(batch)


# ---------------------------------------------------------------- feed sources


def _events_start() -> int:
    return Event.objects.aggregate(m=Max("seq"))["m"] or 0


def _events_poll(cursor: int) -> tuple[list[dict[str, Any]], int]:
    events = list(Event.objects.filter(seq__gt=cursor).order_by("seq")[:BATCH])
    if not events:
        return [], cursor
    return [event_json(e) for e in events], events[-1].seq


def event_json(event: Event) -> dict[str, Any]:
    """An event as programs receive it (the API and the JSON stream): payload as an object."""
    return {
        "type": "event",
        "seq": event.seq,
        "stream": event.stream,
        "version": event.version,
        "event_type": event.type,
        "payload": event.data,
        "at": event.at.isoformat(),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def holdings_json(session_id: str) -> dict[str, Any]:
    session = Session.objects.get(id=session_id)
    matrix = projections.holdings_matrix(session_id)
    return {
        "type": "holdings",
        "session_id": session_id,
        "seq": session.last_seq,
        "status": session.status,
        "legs": session.legs,
        "holdings": {
            u: {leg: domain.qty_str(x) for leg, x in zip(session.legs, row, strict=True)} for u, row in matrix.items()
        },
    }


def _ticks_start() -> int:
    return Tick.objects.aggregate(m=Max("id"))["m"] or 0


def _ticks_poll(cursor: int) -> tuple[list[dict[str, Any]], int]:
    rows = list(
        Tick.objects.filter(id__gt=cursor)
        .order_by("id")
        .values_list("id", "session_id", "symbol", "price", "at")[: BATCH * 10]
    )
    if not rows:
        return [], cursor
    ticks = [
        {"type": "tick", "id": i, "session_id": sid, "symbol": sym, "price": domain.price_str(p), "at": at.isoformat()}
        for i, sid, sym, p, at in rows
    ]
    return ticks, rows[-1][0]


async def _fan_out(session_ids: set[str], partial: str) -> None:
    layer = get_channel_layer()
    for sid in sorted(session_ids):
        panels = await sync_to_async(closing(_render_if_exists), thread_sensitive=False)(sid, partial)
        if panels is None:
            continue
        await layer.group_send(group_name(sid), {"type": "floor.update", "batch": publish(panels), "session": sid})


def json_group_name(session_id: str) -> str:
    return f"json.{session_id}"


async def _on_events(events: list[dict[str, Any]]) -> None:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event["stream"].startswith("session-"):
            by_session[event["stream"].removeprefix("session-")].append(event)
    await _fan_out(set(by_session), "push")
    layer = get_channel_layer()
    for sid, batch in by_session.items():
        holdings = await sync_to_async(closing(holdings_json), thread_sensitive=False)(sid)
        await layer.group_send(json_group_name(sid), {"type": "json.batch", "items": [*batch, holdings]})


async def _on_ticks(ticks: list[dict[str, Any]]) -> None:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tick in ticks:
        by_session[tick["session_id"]].append(tick)
    await _fan_out(set(by_session), "prices_push")
    layer = get_channel_layer()
    for sid, batch in by_session.items():
        await layer.group_send(json_group_name(sid), {"type": "json.batch", "items": batch})


def register() -> None:
    if "events" not in feed.sources:
        feed.register("events", _events_start, _events_poll, _on_events)
        feed.register("ticks", _ticks_start, _ticks_poll, _on_ticks)
