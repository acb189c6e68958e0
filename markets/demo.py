"""Demo mode: who the "Demo: act as" switcher may sign you in as, and from where.

Only the demo's own accounts: members of the DEMO_GROUP (seed_demo puts its users there), active, and
never staff or superusers, so the switcher can never open the admin. It answers clients on this machine
(loopback) only, unless settings.DEMO_OPEN_TO_NETWORK opens it to the room's network.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest

DEMO_GROUP = "demo accounts"


def accounts() -> QuerySet:
    return (
        get_user_model()
        .objects.filter(groups__name=DEMO_GROUP, is_active=True, is_staff=False, is_superuser=False)
        .order_by("username")
    )


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def switch_allowed(request: HttpRequest) -> bool:
    """Whether this client may use the switcher at all."""
    if not settings.DEMO_MODE:
        return False
    return settings.DEMO_OPEN_TO_NETWORK or is_loopback(request.META.get("REMOTE_ADDR"))
