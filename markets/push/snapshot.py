"""The floor as every viewer sees it, rendered once per position and kept for the next viewer.

A floor's shared panels change only when its session's log or its prices move, so a rendering is named
by where the floor stands: the session's last event seq, its last tick id and its phase (t2 passes
with no event), and whether it goes out of band (a socket) or into the page. A page, a socket's first
floor and the RFQ board's data for every viewer then cost one rendering per position per process, not
one per viewer: 500 sockets reconnecting after a restart, or a class reloading at once, share it. Those
who ask while it is being rendered wait for it rather than render it again.

A process keeps the last few renderings (memory, not the database); a rendering that outlives its
position is never served, because its name no longer matches.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

from ledger import clock
from markets import selectors
from markets.models import Session
from markets.push import render
from markets.push.panels import EVERYTHING

KEEP = 32
WAIT_SECONDS = 30

type Key = tuple[str, str, int, int, str, bool]

_kept: OrderedDict[Key, dict[str, Any]] = OrderedDict()
_rendering: dict[Key, Future] = {}
_lock = threading.Lock()
stats = {"rendered": 0, "shared": 0}  # for the tests and the benchmark: how often a floor was rendered


def key(session: Session, *, oob: bool) -> Key:
    """Where `session`'s floor stands now (one indexed read: its last tick). Its creation instant tells a
    session from an earlier one of the same id (a test database flushed under a running server)."""
    tick = selectors.last_tick(session.id)
    return (session.id, session.created_at.isoformat(), session.last_seq, tick, session.phase(clock.now()), oob)


def position(name: Key) -> str:
    """The position a key names, as the page writes it (`?at=`)."""
    return selectors.position_text(name[2], name[3])


def floor(session: Session, *, oob: bool, name: Key | None = None) -> dict[str, Any]:
    """Every shared panel of `session`'s floor and the RFQ board's data (`render.render_panels`), for a
    page (`oob=False`) or a socket (`oob=True`), rendered at most once per position (`name`, when the
    caller has just read it with `key`)."""
    name = name or key(session, oob=oob)
    with _lock:
        kept = _kept.get(name)
        if kept is not None:
            _kept.move_to_end(name)
            stats["shared"] += 1
            return kept
        pending = _rendering.get(name)
        mine = pending is None
        if mine:
            pending = _rendering[name] = Future()
    if not mine:
        stats["shared"] += 1
        return pending.result(timeout=WAIT_SECONDS)
    try:
        panels = render.render_panels(session.id, EVERYTHING, oob=oob) | {"kept": True}
    except BaseException as exc:
        with _lock:
            del _rendering[name]
        pending.set_exception(exc)
        raise
    with _lock:
        del _rendering[name]
        stats["rendered"] += 1
        # Kept under the position the page or socket asked at; what it shows is that or newer.
        _kept[name] = panels
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    pending.set_result(panels)
    return panels


def floor_of(session_id: str) -> dict[str, Any] | None:
    """A socket's whole floor by session id (None once the session is gone)."""
    session = Session.objects.filter(id=session_id).first()
    return floor(session, oob=True) if session is not None else None


def forget() -> None:
    """Drop every kept rendering (tests that rewrite a floor under the same position)."""
    with _lock:
        _kept.clear()
