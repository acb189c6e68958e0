"""Demo mode: who the "Demo: act as" switcher may sign you in as, and from where.

Only the demo's own accounts: members of the DEMO_GROUP (seed_demo puts its users there), active, and
never staff or superusers, so the switcher can never open the admin. It answers clients on this machine
(loopback) only, unless settings.DEMO_OPEN_TO_NETWORK opens it to the room's network.

Their passwords: `demo` while the demo stays on this machine. A start on the network (./start-demo.sh with
HOST beyond loopback) gives them random ones instead, made once and kept in `.demo/passwords` (mode 600),
which every later start and `seed_demo` keep using: nobody in the room signs in as the organiser with `demo`.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

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


# ---------------------------------------------------------------- the accounts' passwords on a network

PASSWORDS_FILE = Path(settings.BASE_DIR) / ".demo" / "passwords"
# Easy to read off a screen and type on a phone: no 0/o, 1/l/i; 12 of 31 letters and digits (59 bits).
_LETTERS = "abcdefghjkmnpqrstuvwxyz23456789"


def new_password() -> str:
    text = "".join(secrets.choice(_LETTERS) for _ in range(12))
    return "-".join(text[i : i + 4] for i in range(0, 12, 4))


def read_passwords(path: Path | None = None) -> dict[str, str]:
    """{username: password} as the file (default PASSWORDS_FILE) lists them (`name password` a line; # comments)."""
    path = path or PASSWORDS_FILE
    if not path.is_file():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and not parts[0].startswith("#"):
            found[parts[0]] = parts[1]
    return found


def keep_passwords(names: list[str], path: Path) -> tuple[dict[str, str], set[str]]:
    """The passwords of `names` kept in `path`, and the names given one just now (all of them the first time;
    a name the file lacks later). The file is written whole, readable by its owner only, then moved into place."""
    passwords = read_passwords(path)
    made = {name for name in names if name not in passwords}
    if made:
        passwords |= {name: new_password() for name in names if name in made}
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# The demo accounts' passwords, made by ./start-demo.sh for a start on the network.\n")
            out.write("# Kept for every later start; delete this file and start with --reset to go back to 'demo'.\n")
            out.writelines(f"{name} {password}\n" for name, password in passwords.items())
        os.chmod(draft, 0o600)
        os.replace(draft, path)
    return {name: passwords[name] for name in names}, made
