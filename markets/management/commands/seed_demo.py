"""Seed the seed's demo (idempotent): users, session `demo`, allocation, and open RFQs with quotes."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from markets import services
from markets.errors import DomainError
from markets.models import RFQ, Session

DEMO_PASSWORD = "demo"
USERS = [("organiser", True), ("alice", False), ("bob", False), ("mm", False)]
LEGS = ["AAPL", "NVDA", "META", "ORCL"]
Q = [100, 60, 80, 120]


class Command(BaseCommand):
    help = "Create the demo users and session `demo` (AAPL NVDA META ORCL, q = 100/60/80/120). Safe to run twice."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--session-id", default="demo")
        parser.add_argument("--password", default=DEMO_PASSWORD, help="Password for every demo user")

    def handle(self, *args, session_id: str, password: str, **options) -> None:
        User = get_user_model()
        users = {}
        for name, admin in USERS:
            user, created = User.objects.get_or_create(username=name)
            if created:
                user.set_password(password)
                user.is_staff = user.is_superuser = admin
                user.save()
            users[name] = user
        try:
            if not Session.objects.filter(id=session_id).exists():
                services.create_session(
                    users["organiser"],
                    session_id=session_id,
                    title="Seed demo: four tech legs",
                    legs=LEGS,
                    q=Q,
                    start_mode="immediate",
                    end_mode="manual",
                )
                services.join_session(users["alice"], session_id, "trader")
                services.join_session(users["bob"], session_id, "trader")
                services.join_session(users["mm"], session_id, "maker")
            session = Session.objects.get(id=session_id)
            if session.status == Session.Status.CREATED:
                services.open_session(users["organiser"], session_id)
            session.refresh_from_db()
            if session.status == Session.Status.OPEN and not RFQ.objects.filter(session=session).exists():
                rfq = services.request_rfq(users["alice"], session_id, "AAPL", "NVDA", "10")
                services.provide_quote(users["mm"], rfq.id, "0.62", ttl_seconds=3600)
                rfq2 = services.request_rfq(users["bob"], session_id, "ORCL", "META", "12")
                services.provide_quote(users["mm"], rfq2.id, "0.31", ttl_seconds=3600)
        except DomainError as exc:
            raise CommandError(f"seeding failed: {exc.message}") from None
        self.stdout.write(
            f"demo ready: session {session_id}; users {', '.join(n for n, _ in USERS)} "
            f"(password '{password}'; organiser is also the Django admin)"
        )
