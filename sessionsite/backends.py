"""Django's model backend, with the signed-in user of every request read by one prepared statement.

Every signed-in page, htmx partial and socket connect loads its user after its session
(`sessionsite.sessions`). `ModelBackend.get_user` builds an ORM query for it each time, which costs
more than the rest of a small page's reads together; here the row is read by its key with
`markets.sql.get_by_pk`, then checked as Django checks it (`user_can_authenticate`: inactive users
are signed out). Signing in, passwords and permissions are Django's own.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError


class PreparedModelBackend(ModelBackend):
    def get_user(self, user_id):
        from markets import sql

        model = get_user_model()
        try:
            pk = model._meta.pk.to_python(user_id)
        except (ValidationError, TypeError, ValueError):  # a session naming a key of another shape: no user
            return None
        user = sql.get_by_pk(model, pk)
        return user if user is not None and self.user_can_authenticate(user) else None
