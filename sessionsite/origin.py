"""WebSocket handshakes checked the way Django's CSRF check treats a POST: a browser's socket must come
from a page of this site, same scheme, host and port (or an origin in CSRF_TRUSTED_ORIGINS).

Channels' `AllowedHostsOriginValidator` compares the Origin's host with ALLOWED_HOSTS only, so a page on
`http://localhost:1234` could open a signed-in visitor's floor on `localhost:8000`. Here the Origin must
equal the origin the browser used to reach us (the Host header, with http for ws and https for wss).

A client that sends no Origin (Python's `websockets`, curl, most programs) is not a browser page: it is
let through with `scope["origin"] = None`, and the consumers accept it only with an API token (a cookie
is ignored then, so no other site can borrow it).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_BROWSER_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def _origin_tuple(scheme: str, host: str, port: int | None) -> tuple[str, str, int | None]:
    return scheme, host.lower().strip("[]"), port if port is not None else _DEFAULT_PORTS.get(scheme)


def _parse(origin: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    return _origin_tuple(parts.scheme, parts.hostname, port)


def _own_origin(scope: dict[str, Any], host_header: str) -> tuple[str, str, int | None] | None:
    """The origin of the page that opened this socket, if it came through our own host and port."""
    domain, port_text = split_domain_port(host_header)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = _BROWSER_SCHEME.get(scope.get("scheme", "ws"), "http")
    try:
        port = int(port_text) if port_text else None
    except ValueError:
        return None
    return _origin_tuple(scheme, domain, port)


def _trusted(origin: tuple[str, str, int | None]) -> bool:
    """CSRF_TRUSTED_ORIGINS, as Django reads them: scheme://host[:port], a leading `*.` for subdomains."""
    scheme, host, port = origin
    for pattern in settings.CSRF_TRUSTED_ORIGINS:
        parts = urlsplit(pattern)
        try:
            pattern_port = parts.port
        except ValueError:
            continue
        if parts.scheme != scheme or not parts.hostname:
            continue
        if _origin_tuple(scheme, "x", pattern_port)[2] != port:
            continue
        name = parts.netloc.rsplit(":", 1)[0] if pattern_port else parts.netloc
        if name.startswith("*.") and is_same_domain(host, name[1:]):
            return True
        if name.lower() == host:
            return True
    return False


def same_origin(origin: str, host_header: str, scope: dict[str, Any]) -> bool:
    parsed = _parse(origin)
    if parsed is None:
        return False
    return parsed == _own_origin(scope, host_header) or _trusted(parsed)


class SameOriginWebSocket:
    """ASGI middleware for the WebSocket router (see the module docstring)."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.application(scope, receive, send)
        origin = host = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        if origin is not None and not same_origin(origin, host or "", scope):
            log.warning("websocket %s refused: origin %r is not this site (%s)", scope.get("path"), origin[:100], host)
            return await WebsocketDenier()(scope, receive, send)  # HTTP 403 at the handshake
        return await self.application(dict(scope, origin=origin), receive, send)
