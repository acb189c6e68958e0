"""Django's database sessions, each read by one prepared statement (`SESSION_ENGINE`).

Every signed-in page, API call by cookie and socket connect reads its session row first. Django's
`db` engine builds an ORM query for it each time, which costs several times the read itself; here the
row is read by its key with `markets.sql.get_by_pk` and its expiry checked in Python, exactly as the
`db` engine would. Writing, expiring and deleting sessions are Django's own.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        from markets import sql

        row = sql.get_by_pk(self.model, self.session_key) if self.session_key else None
        if row is None or row.expire_date <= timezone.now():
            self._session_key = None
            return None
        return row
