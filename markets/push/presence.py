"""Who has a session's floor open: the floor's sockets counted per (session, user) in `markets.Presence`.

Operational state, not market state (no event, no replay): it is in the database only because several
web processes may serve one session. Each connect and disconnect is an UPDATE (an INSERT the first
time a user ever connects to the session), run in the process's presence thread (not Channels' database
thread, where connects queue); those that come while one is being written go together in the next
transaction, whose commit does not wait for the disk (a power cut may forget who was online, nothing
else). A failure is logged and forgotten, never a refused socket. Each process also refreshes
`last_seen` of the pairs it holds sockets for every `HEARTBEAT_SECONDS` (one UPDATE per session,
whatever the number of sockets), so a row whose process was killed stops being refreshed and reads as
gone after `STALE_SECONDS` (`markets.models.Presence`).

A count left behind by a killed process heals itself: a connect to a stale row starts counting at 1, a
disconnect from a stale row leaves 0.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import weakref
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest

from ledger import clock
from markets import presence_sql
from markets.models import Presence
from markets.push.feed import db_work

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = Presence.HEARTBEAT_SECONDS

# The sockets this process holds, per (session id, user id): what its heartbeat keeps fresh.
held: Counter[tuple[str, int]] = Counter()
_beat: asyncio.Task | None = None


def _stale_before(now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(seconds=Presence.STALE_SECONDS)


def connected(session_id: str, user_id: int, n: int = 1) -> None:
    """`n` more sockets of `user_id` on the session (a stale row starts counting afresh)."""
    now = clock.now()
    if presence_sql.update_presence({(session_id, user_id): n}, now, _stale_before(now)):
        return
    try:
        with transaction.atomic():
            Presence.objects.create(session_id=session_id, user_id=user_id, sockets=n, last_seen=now)
    except IntegrityError:  # another process made the row first: count on it
        presence_sql.update_presence({(session_id, user_id): n}, now, _stale_before(now))


def disconnected(session_id: str, user_id: int, n: int = 1) -> None:
    """`n` sockets fewer (never below 0; a stale row, counted by a process that died, goes to 0)."""
    now = clock.now()
    presence_sql.update_presence({(session_id, user_id): -n}, now, _stale_before(now))


def record(changes: dict[tuple[str, int], int]) -> None:
    """Sockets come and gone since the last write, net per (session, user), in one transaction that does
    not wait for the disk (`presence_sql.commit_without_waiting`: who is online is not the ledger): a reconnect
    storm of 500 sockets is a few statements, not 500 fsyncs."""
    now = clock.now()
    with presence_sql.commit_without_waiting():
        sessions = {session_id for session_id, _ in changes}
        users = {user_id for _, user_id in changes}
        rows = Presence.objects.filter(session_id__in=sessions, user_id__in=users)
        have = set(rows.values_list("session_id", "user_id"))
        presence_sql.update_presence({k: n for k, n in changes.items() if k in have}, now, _stale_before(now))
        for (session_id, user_id), n in sorted(changes.items()):
            if n > 0 and (session_id, user_id) not in have:  # the user's first connect to the session
                connected(session_id, user_id, n)


def refresh(pairs: list[tuple[str, int]]) -> None:
    """The heartbeat: the pairs this process holds sockets for are seen now (and counted at least once,
    had a stale reset elsewhere zeroed them)."""
    now = clock.now()
    by_session: dict[str, list[int]] = {}
    for session_id, user_id in pairs:
        by_session.setdefault(session_id, []).append(user_id)
    with presence_sql.commit_without_waiting():
        for session_id, user_ids in sorted(by_session.items()):
            Presence.objects.filter(session_id=session_id, user_id__in=user_ids).update(
                last_seen=now, sockets=Greatest(F("sockets"), Value(1))
            )


# The presence writes of this process run in a thread of their own, on its own connection: never in the
# queue of Channels' one database thread, where the sockets' connects wait their turn. The sockets'
# credentials are re-read there too (markets.push.credentials).
_writer = ThreadPoolExecutor(1, thread_name_prefix="presence")


async def on_thread(fn, *args):
    """`fn(*args)` in this thread (a read of the sockets' credentials, `markets.push.credentials`)."""
    return await asyncio.get_running_loop().run_in_executor(_writer, functools.partial(db_work, fn, *args))


async def _safely(fn, *args) -> bool:
    try:
        await on_thread(fn, *args)
    except DatabaseError as exc:
        log.warning("presence not recorded (%s%r): %s", fn.__name__, args, exc)
        return False
    return True


def monitor_group(session_id: str) -> str:
    """The session's monitor pages in this process: told when a socket comes or goes."""
    return f"monitor.{session_id}"


async def arrive(layer, session_id: str, user_id: int) -> None:
    """A floor socket of this process was accepted: count it, keep this process's heartbeat going, and
    tell the session's monitors (a group nobody is in costs nothing)."""
    held[(session_id, user_id)] += 1
    _ensure_beating()
    await _note(layer, (session_id, user_id), +1)


async def leave(layer, session_id: str, user_id: int) -> None:
    key = (session_id, user_id)
    held[key] -= 1
    if held[key] <= 0:
        del held[key]
    if not held:
        _stop_beating()
    await _note(layer, key, -1)


# Changes not yet written, and the one write in flight: who finds it busy leaves its change for the
# next write, which carries everything that came meanwhile.
_pending: Counter[tuple[str, int]] = Counter()
_writing: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


async def _note(layer, key: tuple[str, int], delta: int) -> None:
    _pending[key] += delta
    writing = _writing.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with writing:  # free: written at once (no wait); busy: after the write in flight
        if not _pending:
            return  # written by the write before
        changes = dict(_pending)
        _pending.clear()
        if await _safely(record, changes):
            for session_id in sorted({sid for sid, _ in changes}):
                await layer.group_send(monitor_group(session_id), {"type": "monitor.presence"})


def _ensure_beating() -> None:
    global _beat
    loop = asyncio.get_running_loop()
    if _beat is not None and not _beat.done() and _beat.get_loop() is loop:
        return
    _beat = loop.create_task(_heartbeat(), name="presence-heartbeat")


def _stop_beating() -> None:
    global _beat
    if _beat is not None and not _beat.done():
        _beat.cancel()
    _beat = None


async def _heartbeat() -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        if held:
            await _safely(refresh, sorted(held))
