"""A WebSocket's signed-in user, read by the consumer's own first trip to the database.

Channels' `AuthMiddleware` reads the session and the user in a trip of its own to its one database
thread, before the consumer runs; the floor's consumer then makes a second trip for everything else it
reads on connect. In a reconnect storm (500 sockets at once) those trips queue behind each other. Here
`scope["user"]` is a lazy object: the session cookie's user (Django's own `auth.get_user`, session hash
check included) is read the first time a consumer looks at it, which it does inside its one trip
(`markets.push.consumers`). Looking at it on the event loop raises Django's SynchronousOnlyOperation,
so a consumer that forgets cannot silently block the loop.
"""

from __future__ import annotations

from types import SimpleNamespace

from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.contrib import auth
from django.utils.functional import SimpleLazyObject


class DeferredAuthMiddleware(BaseMiddleware):
    """`scope["user"]`: the session's user, read when first used (requires SessionMiddleware)."""

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        if "user" not in scope:
            request = SimpleNamespace(session=scope["session"])
            scope["user"] = SimpleLazyObject(lambda: auth.get_user(request))
        return await super().__call__(scope, receive, send)


def DeferredAuthMiddlewareStack(inner):
    return CookieMiddleware(SessionMiddleware(DeferredAuthMiddleware(inner)))
