"""What the floor pushes, and when: handlers for the ledger feed's two sources.

New ledger events (any process) -> re-render the session's shared panels once and send them to its
group; new oracle ticks -> re-render prices, values and the invariants once. Consumers add the RFQ
board per viewer from the shared data, so no browser costs an extra database read.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db.models import Max
from django.template.loader import render_to_string

from ledger.feed import feed
from ledger.models import Event
from markets import selectors
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


def render_board(panels: dict[str, Any], me: Participant | None) -> str:
    """The board for one viewer, from the batch's shared data: no database read per browser."""
    context = {
        "session": panels["session"],
        "board": panels["board"],
        "me": me,
        "is_organiser": bool(me and me.role == Participant.Role.ORGANISER),
        "oob": True,
    }
    return render_to_string(f"{FLOOR}#board", context)


# ---------------------------------------------------------------- feed sources


def _events_start() -> int:
    return Event.objects.aggregate(m=Max("seq"))["m"] or 0


def _events_poll(cursor: int) -> tuple[list[str], int]:
    rows = list(Event.objects.filter(seq__gt=cursor).order_by("seq").values_list("seq", "stream")[:BATCH])
    if not rows:
        return [], cursor
    return [stream for _, stream in rows], rows[-1][0]


def _ticks_start() -> int:
    return Tick.objects.aggregate(m=Max("id"))["m"] or 0


def _ticks_poll(cursor: int) -> tuple[list[str], int]:
    rows = list(Tick.objects.filter(id__gt=cursor).order_by("id").values_list("id", "session_id")[: BATCH * 10])
    if not rows:
        return [], cursor
    return [sid for _, sid in rows], rows[-1][0]


async def _fan_out(session_ids: set[str], partial: str) -> None:
    layer = get_channel_layer()
    for sid in sorted(session_ids):
        exists = await sync_to_async(Session.objects.filter(id=sid).exists, thread_sensitive=False)()
        if not exists:
            continue
        panels = await sync_to_async(_rendered, thread_sensitive=False)(sid, partial)
        await layer.group_send(group_name(sid), {"type": "floor.update", "panels": panels})


def _rendered(session_id: str, partial: str) -> dict[str, Any]:
    from django.db import connection

    try:
        return render_panels(session_id, partial)
    finally:
        connection.close()


async def _on_events(streams: list[str]) -> None:
    sessions = {s.removeprefix("session-") for s in streams if s.startswith("session-")}
    await _fan_out(sessions, "push")
    await _notify_json(streams)


async def _on_ticks(session_ids: list[str]) -> None:
    await _fan_out(set(session_ids), "prices_push")


async def _notify_json(streams: list[str]) -> None:
    layer = get_channel_layer()
    counts: dict[str, int] = defaultdict(int)
    for stream in streams:
        counts[stream] += 1
    for stream in counts:
        await layer.group_send(f"json.{stream.removeprefix('session-')}", {"type": "ledger.events"})


def register() -> None:
    if "events" not in feed.sources:
        feed.register("events", _events_start, _events_poll, _on_events)
        feed.register("ticks", _ticks_start, _ticks_poll, _on_ticks)
