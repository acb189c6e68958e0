"""What the floor pushes, and when: the handlers of the feed's two sources (see markets.push).

New ledger events (any process) -> what they changed is rendered once for the session and sent to its
sockets in this process (`deliver`): quoting and trading as rows (`panels.Delta`: the log's and the
blotter's new rows, the holdings rows that moved, the RFQs touched, with the small panels whole), any
other change as the panels it makes stale (`panels.stale`); new oracle ticks -> prices, values and the
invariants, once. Consumers add the RFQ board (or its rows) per viewer from the shared data, so no
browser costs an extra database read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.db.models import Max, Q

from ledger import clock, store
from ledger.models import Event
from ledger.postgres import LEDGER_CHANNEL, TICKS_CHANNEL, Position, begin, follow
from markets import domain, projections, selectors, sql
from markets.models import Session
from markets.push.feed import appended, feed
from markets.push.panels import EVERYTHING, TICK, Delta, delta, stale
from markets.push.render import render_delta, render_if_exists
from oracle.models import Tick

BATCH = 1000

log = logging.getLogger(__name__)


class Viewer(Protocol):
    """A floor socket of this process as the fan-out sees it (markets.push.consumers.FloorConsumer)."""

    ready: bool  # its first floor is sent: pushes go to it directly
    missed: bool  # a push came while it was not ready: it must read its floor afresh
    version: int | None  # the session's stream version its floor shows (rows apply on it alone); None: any

    async def push(self, panels: dict[str, Any]) -> None: ...


# This process's floor sockets by session, written to directly by the fan-out: one loop over the
# session's sockets, as a bare ASGI broadcast does. Through the channel layer, every socket cost a
# copied message, a task and a wake-up of its own (a third of a push to 500 sockets).
_viewers: defaultdict[str, dict[Viewer, asyncio.AbstractEventLoop]] = defaultdict(dict)


def watch(session_id: str, viewer: Viewer) -> None:
    """From now on `viewer` gets the session's pushes (or, until it is ready, learns that it missed one)."""
    viewer.ready, viewer.missed = False, False
    _viewers[session_id][viewer] = asyncio.get_running_loop()


def unwatch(session_id: str, viewer: Viewer) -> None:
    """No more pushes to `viewer` (whether it was watching or not)."""
    viewers = _viewers.get(session_id)
    if viewers is not None:
        viewers.pop(viewer, None)
        if not viewers:
            del _viewers[session_id]


async def deliver(session_id: str, panels: dict[str, Any]) -> None:
    """Send a rendering to every socket of the session in this process; those still connecting are
    told they missed it. Rows (`render_delta`) go to the sockets whose floor stands where they start;
    a socket already past them gets nothing, one elsewhere the whole floor (rendered once for all)."""
    loop = asyncio.get_running_loop()
    change: Delta | None = panels.get("delta")
    whole: dict[str, Any] | None = None
    for viewer, its_loop in list(_viewers.get(session_id, {}).items()):
        if its_loop is not loop:
            if its_loop.is_closed():  # a socket of an event loop that is gone (tests): nothing to write to
                unwatch(session_id, viewer)
            continue
        if not viewer.ready:
            viewer.missed = True
            continue
        rendering = panels
        if change is not None and viewer.version is not None and viewer.version != change.after:
            if viewer.version >= change.version:
                continue
            if whole is None:
                whole = await feed.run_sync(render_if_exists, session_id, EVERYTHING)
                if whole is None:
                    return
            rendering = whole
        try:
            await viewer.push(rendering)
        except Exception:  # one broken socket must not keep the push from the others
            log.exception("push to a floor socket of %s failed", session_id)


# ---------------------------------------------------------------- feed sources


def _newer(queryset, key: str, position: Position):
    """The rows of `queryset` past `position` (above its last key, or in its gaps), by key."""
    after = Q(**{f"{key}__gt": position.last})
    if position.gaps:
        after |= Q(**{f"{key}__in": list(position.gaps)})
    return queryset.filter(after).order_by(key)


def _start(queryset, key: str) -> Position:
    """Past the newest row of `queryset` by `key`, with the gaps a transaction in flight may still fill."""
    return begin(
        lambda: queryset.aggregate(m=Max(key))["m"],
        lambda k: list(queryset.filter(**{f"{key}__gt": k}).values_list(key, flat=True)),
    )


def _events_start() -> Position:
    return _start(Event.objects.all(), "seq")


@dataclass
class Batch:
    """One session's new events (or ticks) as the feed's thread read them, with what this process sends
    for them prepared in the same trip: the floor's rendering (None when no socket of this process shows
    the session) and the JSON stream's holdings (None when no stream of this process follows it)."""

    session_id: str
    items: list[dict[str, Any]]
    floor: dict[str, Any] | None = None
    holdings: dict[str, Any] | None = None


def _events_poll(position: Position) -> tuple[list[Batch], Position]:
    """New events, by session, rendered for this process's floors and streams (the feed's thread)."""
    events, position = follow(lambda p: list(_newer(Event.objects.all(), "seq", p)[:BATCH]), _seq, position)
    batches = _by_session(event_message(e) for e in events)
    for batch in batches:
        if batch.session_id in _viewers:
            messages = [m["event"] for m in batch.items]
            change = delta(messages)
            if change is not None:
                batch.floor = _prepared(render_delta, batch.session_id, change, batch.items)
            else:
                batch.floor = _prepared(render_if_exists, batch.session_id, stale(m["type"] for m in messages))
        if _streamed(batch.session_id):
            batch.holdings = _prepared(holdings_json, batch.session_id)
    return batches, position


def _prepared(render, session_id: str, *args: Any) -> dict[str, Any] | None:
    """A rendering of a batch; one that fails is logged and not sent (the feed reads on: a bad batch
    must not silence every browser; the next one, or a reconnect, brings the floor up to date)."""
    try:
        return render(session_id, *args)
    except Exception:
        log.exception("rendering a push for %s failed", session_id)
        return None


def _by_session(items: Iterable[dict[str, Any]]) -> list[Batch]:
    batches: dict[str, Batch] = {}
    for item in items:
        sid = item.get("session_id") or domain.session_of_stream(item["event"]["stream"])
        if sid is not None:
            batches.setdefault(sid, Batch(sid, [])).items.append(item)
    return [batches[sid] for sid in sorted(batches)]


def _streamed(session_id: str) -> bool:
    """Whether a JSON stream of this process follows the session (asked of the in-memory layer's groups;
    any other layer: assume so). One that joins after this is asked reads these events in its backlog."""
    groups = getattr(get_channel_layer(), "groups", None)
    return groups is None or bool(groups.get(json_group_name(session_id)))


def _seq(event: Event) -> int:
    return event.seq


def event_message(event: Event) -> dict[str, Any]:
    """An event as the JSON stream sends it: the one serialised shape (`selectors.event_json`, as the API's
    events pages give it) inside a message of type "event"."""
    return {"type": "event", "event": selectors.event_json(event)}


def holdings_json(session_id: str) -> dict[str, Any]:
    session = sql.get_existing(Session, session_id)
    matrix = projections.holdings_matrix(session_id)
    return {
        "type": "holdings",
        "session_id": session_id,
        "seq": session.last_seq,
        "status": session.phase(clock.now()),
        "legs": session.legs,
        "holdings": {
            u: {leg: domain.qty_str(x) for leg, x in zip(session.legs, row, strict=True)} for u, row in matrix.items()
        },
    }


def _ticks_start() -> Position:
    return _start(Tick.objects.all(), "id")


def _ticks_poll(position: Position) -> tuple[list[Batch], Position]:
    """New ticks, by session, with the prices, values and invariants rendered for this process's floors."""

    def read(p: Position) -> list:
        fields = ("id", "session_id", "symbol", "price", "at")
        return list(_newer(Tick.objects.all(), "id", p).values_list(*fields)[: BATCH * 10])

    rows, position = follow(read, _first, position)
    batches = _by_session(
        {"type": "tick", "id": i, "session_id": sid, "symbol": sym, "price": domain.price_str(p), "at": at.isoformat()}
        for i, sid, sym, p, at in rows
    )
    for batch in batches:
        if batch.session_id in _viewers:
            batch.floor = _prepared(render_if_exists, batch.session_id, stale([TICK]))
    return batches, position


def _first(row: tuple) -> int:
    return row[0]


def json_group_name(session_id: str) -> str:
    return f"json.{session_id}"


async def _send(batches: list[Batch]) -> None:
    """What a poll prepared: each session's floor rendering to its sockets here (`deliver`), then its
    items (and holdings) to its JSON streams here."""
    for batch in batches:
        if batch.floor is not None:
            await deliver(batch.session_id, batch.floor)
    layer = get_channel_layer()
    for batch in batches:
        if _streamed(batch.session_id):
            items = [*batch.items, batch.holdings] if batch.holdings is not None else batch.items
            await layer.group_send(json_group_name(batch.session_id), {"type": "json.batch", "items": items})


SOURCES = (
    ("events", _events_start, _events_poll, _send, LEDGER_CHANNEL),
    ("ticks", _ticks_start, _ticks_poll, _send, TICKS_CHANNEL),
)  # name, start, poll, handler, the NOTIFY channel of its table


async def start() -> None:
    """The one place this process's follower starts (every socket awaits it before its first read; once
    running, it returns at once): register the two sources, listen to this process's commits, run on the
    current loop, and return when the follower holds its starting positions (`Feed.ensure_running`)."""
    for name, first, poll, handler, channel in SOURCES:
        if name not in feed.sources:
            feed.register(name, first, poll, handler, channel)
    store.after_commit(appended)
    await feed.ensure_running()
