"""ASGI entry point: HTTP goes to Django (static files included), WebSockets to Channels.

With STOCK_SERVER=true (settings) HTTP goes to Django's own ASGI handler and no speed patch is applied to
daphne and autobahn (sessionsite/wsserver.py): the stock paths, for judging an upgrade of those packages.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sessionsite.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from django.conf import settings  # noqa: E402

if settings.STOCK_SERVER:
    from django.core.handlers.asgi import ASGIHandler

    django_asgi_app = ASGIHandler()
else:
    from sessionsite.handler import PooledASGIHandler

    django_asgi_app = PooledASGIHandler()  # each request in one call on the process's threads (handler.py)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from markets.push.routing import websocket_urlpatterns  # noqa: E402
from sessionsite import warm, wsserver  # noqa: E402
from sessionsite.origin import SameOriginWebSocket  # noqa: E402
from sessionsite.wsauth import DeferredAuthMiddlewareStack  # noqa: E402

if not settings.STOCK_SERVER:
    wsserver.patch()
wsserver.refuse_too_big()  # in both modes: stock daphne cannot close with 1009 (wsserver.py)
wsserver.parse_no_forms()  # in both modes: Twisted answers a bad multipart body with a bare 400 (wsserver.py)

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": SameOriginWebSocket(DeferredAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
warm.warm()  # last: what the first request would load, then out of the collector (see sessionsite/warm.py)
