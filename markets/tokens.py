"""API tokens: made once, shown once, stored as a SHA-256 hash plus a short visible prefix.

A token looks like `sc_` + 43 URL-safe characters (256 random bits). Looking a token up hashes what the
client sent and finds the row by that hash, so the token itself is never stored or compared.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from ledger import clock
from markets import sql
from markets.models import ApiToken

TOKEN_PREFIX = "sc_"
VISIBLE_CHARS = 10  # "sc_" and the first 7 random characters: enough to tell tokens apart in the admin
MAX_TOKEN_LENGTH = 200
TOUCH_EVERY = dt.timedelta(minutes=1)  # how often last_used_at is written (not on every request)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> tuple[str, str, str]:
    """A fresh random token: (raw token, visible prefix, hash)."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return raw, raw[:VISIBLE_CHARS], hash_token(raw)


def assign_new_key(token: ApiToken) -> str:
    """Give an unsaved ApiToken a fresh key; returns the raw token (the only time it exists)."""
    raw, token.prefix, token.key_hash = new_key()
    if token.created_at is None:
        token.created_at = clock.now()
    return raw


def create_token(user, name: str = "") -> tuple[ApiToken, str]:
    """Make and save a token for `user`. Returns (row, raw token): show the raw token once."""
    token = ApiToken(user=user, name=str(name)[:100])
    raw = assign_new_key(token)
    token.save()
    return token, raw


def authenticate(raw: str | None):
    """The active user owning this raw token, or None."""
    token = authenticate_token(raw)
    return None if token is None else token.user


def authenticate_token(raw: str | None) -> ApiToken | None:
    """The active token this raw token is, its active user in `.user`, or None (a socket keeps the token's
    id: it is closed once the token is revoked, `markets.push.credentials`)."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH or not raw.startswith(TOKEN_PREFIX):
        return None
    token = sql.active_token(hash_token(raw))
    if token is None or token.user is None or not token.user.is_active:
        return None
    now = clock.now()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
