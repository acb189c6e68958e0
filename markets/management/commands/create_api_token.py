"""`manage.py create_api_token USERNAME [--name NAME] [--quiet]`: make an API token and print it once.

Only a SHA-256 hash of the token is stored; if it is lost, make a new one (and revoke the old one in
the admin).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from markets import tokens


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it once (only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for (shown in the admin)")
        parser.add_argument("--quiet", action="store_true", help="Print only the token (for TOKEN=$(...))")

    def handle(self, *args, username: str, name: str, quiet: bool = False, **options) -> None:
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}") from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive")
        token, raw = tokens.create_token(user, name=name)
        if not quiet:
            self.stderr.write(
                f"API token {token.prefix}... for {user.username}. It is shown only this once: "
                "send it as 'Authorization: Bearer <token>'."
            )
        self.stdout.write(raw)
