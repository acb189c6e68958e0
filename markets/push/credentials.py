"""Open sockets lose their standing as pages do: a socket whose API token was revoked (unticked or deleted),
whose account was deactivated (or deleted) or whose sign-in session ended (signed out, expired) is closed
with 4401 within `RECHECK_SECONDS`, whichever process made the change (the admin in another daphne,
`manage.py shell`).

A socket's credentials are read once, when it connects. Each process then re-reads those of the sockets it
holds every `RECHECK_SECONDS`, all at once, in one statement (the users still active, the tokens still
active, the sessions not ended among them), in its presence thread (`markets.push.presence`), never in
the queue of Channels' database thread. A change of password, which signs a browser out of its pages
(Django's session hash, made from the password field), closes its sign-in's sockets too: the password
field read with the user is compared with the one it connected with (revoking a guest's rejoin link
changes it: `markets.services.rejoin`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session as SignIn
from django.db import DatabaseError
from django.db.models import CharField, F, QuerySet, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django.utils.module_loading import import_string

from markets.models import ApiToken
from markets.push import presence

log = logging.getLogger(__name__)

RECHECK_SECONDS = 2.0

TOKEN_REVOKED = "the API token was revoked"
ACCOUNT_DEACTIVATED = "the account was deactivated"
SIGNED_OUT = "signed out: the session ended"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What authenticated a socket: its user, and the API token or the sign-in session it came with."""

    user_id: int
    token_id: int | None = None
    session_key: str | None = None
    password: str | None = None  # a sign-in's: the account's password field when it connected


class Holder(Protocol):
    """A socket as this module sees it (the consumers in markets.push.consumers)."""

    async def withdraw(self, why: str) -> None:
        """Say why (a JSON stream) and close with 4401."""


# The sockets this process holds, with their credentials and the event loop they live on (daphne has one;
# tests start one per test).
_held: dict[Holder, tuple[Credentials, asyncio.AbstractEventLoop]] = {}
_task: asyncio.Task | None = None


def hold(socket: Holder, credentials: Credentials) -> None:
    """From now on `socket` is closed once its credentials lapse."""
    global _task
    loop = asyncio.get_running_loop()
    _held[socket] = (credentials, loop)
    if _task is None or _task.done() or _task.get_loop() is not loop:
        _task = loop.create_task(_rechecking(), name="credentials-recheck")


def release(socket: Holder) -> None:
    """The socket is gone (a no-op for one never held)."""
    global _task
    _held.pop(socket, None)
    if not _held and _task is not None and not _task.done() and _task is not asyncio.current_task():
        _task.cancel()
        _task = None


@functools.cache
def _sessions_in_table() -> bool:
    from django.contrib.sessions.backends.db import SessionStore as InTable

    return issubclass(import_string(f"{settings.SESSION_ENGINE}.SessionStore"), InTable)


def session_key(session) -> str | None:
    """The key of a socket's sign-in session (`scope["session"]`, read after its user was), when its end can
    be seen in the sessions table (the settings' engine keeps them there); None otherwise."""
    if session is None or not _sessions_in_table():
        return None
    return getattr(session, "session_key", None)


def signed_in(user, session) -> Credentials:
    """A sign-in's credentials: the user, the session's key and the password field it was made with."""
    return Credentials(user.pk, session_key=session_key(session), password=user.password)


def _pairs(queryset: QuerySet, kind: str, key) -> QuerySet:
    return queryset.order_by().annotate(kind=Value(kind, output_field=CharField()), key=key).values_list("kind", "key")


def live(credentials: Iterable[Credentials]) -> set[tuple[str, str]]:
    """Which of these still stand, in one statement: ("user", id) for each active user, ("token", id) for
    each active token, ("session", key) for each session that has not ended (ids as text)."""
    credentials = list(credentials)
    users = {c.user_id for c in credentials}
    tokens = {c.token_id for c in credentials if c.token_id is not None}
    keys = {c.session_key for c in credentials if c.session_key is not None}
    parts = []
    if users:
        active = get_user_model().objects.filter(pk__in=users, is_active=True)
        parts.append(_pairs(active, "user", Concat(Cast("pk", CharField()), Value(":"), "password")))
    if tokens:
        parts.append(_pairs(ApiToken.objects.filter(pk__in=tokens, is_active=True), "token", Cast("pk", CharField())))
    if keys:
        ongoing = SignIn.objects.filter(session_key__in=keys, expire_date__gt=timezone.now())  # as sessions.py
        parts.append(_pairs(ongoing, "session", F("session_key")))
    if not parts:
        return set()
    rows = set(parts[0].union(*parts[1:], all=True)) if len(parts) > 1 else set(parts[0])
    standing = set()
    for kind, key in rows:
        if kind == "user":  # ("user", id) and the password it stands with, ("password", "id:field")
            standing |= {("user", key.split(":", 1)[0]), ("password", key)}
        else:
            standing.add((kind, key))
    return standing


def why_lapsed(credentials: Credentials, standing: set[tuple[str, str]]) -> str | None:
    """Why a socket with these credentials must close (None: it may stay)."""
    if ("user", str(credentials.user_id)) not in standing:
        return ACCOUNT_DEACTIVATED
    if credentials.token_id is not None and ("token", str(credentials.token_id)) not in standing:
        return TOKEN_REVOKED
    if credentials.session_key is not None and ("session", credentials.session_key) not in standing:
        return SIGNED_OUT
    if (
        credentials.password is not None
        and ("password", f"{credentials.user_id}:{credentials.password}") not in standing
    ):
        return SIGNED_OUT  # its password changed (or a rejoin link was revoked): its pages are signed out too
    return None


async def recheck() -> int:
    """Read the credentials of every socket held now and close those that lapsed; how many were closed.
    A failed read is logged and tried again at the next round."""
    loop = asyncio.get_running_loop()
    for socket, (_, its_loop) in list(_held.items()):
        if its_loop.is_closed():  # a socket left behind by a loop that ended (tests)
            _held.pop(socket, None)
    held = {socket: credentials for socket, (credentials, its_loop) in _held.items() if its_loop is loop}
    if not held:
        return 0
    try:
        standing = await presence.on_thread(live, held.values())
    except DatabaseError as exc:  # the database is away: the sockets stay, the next round reads again
        log.warning("sockets' credentials not rechecked: %s", exc)
        return 0
    closed = 0
    for socket, credentials in held.items():
        why = why_lapsed(credentials, standing)
        if why is not None and _held.get(socket, (None,))[0] is credentials:
            release(socket)
            closed += 1
            try:
                await socket.withdraw(why)
            except Exception as exc:  # one socket that cannot be closed must not keep the others open
                log.warning("socket not closed (%s): %s", why, exc)
    return closed


async def _rechecking() -> None:
    while _held:
        await asyncio.sleep(RECHECK_SECONDS)
        await recheck()
