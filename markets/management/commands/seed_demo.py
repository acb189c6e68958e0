"""Seed the seed's demo (idempotent): users, session `demo`, allocation, and open RFQs with quotes.

The demo's accounts are members of `markets.demo.DEMO_GROUP`, the only accounts demo mode's switcher
signs in as. None of them is staff or a superuser: the organiser runs sessions with the `add_session`
permission and the floor's organiser controls, not the admin (make an admin with `createsuperuser`;
`./start-demo.sh` makes one called `admin` and keeps its password in `.demo/admin-password`).
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError

from markets import demo, services
from markets.errors import DomainError
from markets.models import RFQ, Session

DEMO_PASSWORD = "demo"
USERS = [("organiser", True), ("alice", False), ("bob", False), ("mm", False)]  # (name, organises)
LEGS = ["AAPL", "NVDA", "META", "ORCL"]
Q = [100, 60, 80, 120]


class Command(BaseCommand):
    help = "Create the demo users and session `demo` (AAPL NVDA META ORCL, q = 100/60/80/120). Safe to run twice."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--session-id", default="demo")
        parser.add_argument("--password", default=DEMO_PASSWORD, help="Password for every demo user")

    def handle(self, *args, session_id: str, password: str, **options) -> None:
        User = get_user_model()
        group, _ = Group.objects.get_or_create(name=demo.DEMO_GROUP)
        may_create = Permission.objects.get(codename="add_session", content_type__app_label="markets")
        users = {}
        for name, organises in USERS:
            user, created = User.objects.get_or_create(username=name)
            if created:
                user.set_password(password)
            # Converge older demos too: a demo account is never staff or a superuser.
            user.is_staff = user.is_superuser = False
            user.save()
            user.groups.add(group)
            if organises:
                user.user_permissions.add(may_create)
            users[name] = User.objects.get(pk=user.pk)
        session_id = fresh_demo_id(session_id)
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
                # Quotes near the oracle-implied rate (its starting prices), a little in the maker's favour.
                rfq = services.request_rfq(users["alice"], session_id, "AAPL", "NVDA", "10")
                services.provide_quote(users["mm"], rfq.id, seed_rate("AAPL", "NVDA"), ttl_seconds=3600)
                rfq2 = services.request_rfq(users["bob"], session_id, "ORCL", "META", "12")
                services.provide_quote(users["mm"], rfq2.id, seed_rate("ORCL", "META"), ttl_seconds=3600)
        except DomainError as exc:
            raise CommandError(f"seeding failed: {exc.message}") from None
        self.stdout.write(
            f"demo ready: session {session_id}; users {', '.join(n for n, _ in USERS)} "
            f"(password '{password}'; organiser runs sessions from the floor)"
        )


def fresh_demo_id(session_id: str) -> str:
    """`session_id`, or when that session is over (settled or cancelled), the first of `<id>-2`, `<id>-3`...
    that is not: a new run of the demo starts a fresh session and keeps the old one's history."""
    over = (Session.Status.SETTLED, Session.Status.CANCELLED)
    candidate, n = session_id, 1
    while Session.objects.filter(id=candidate, status__in=over).exists():
        n += 1
        candidate = f"{session_id}-{n}"
    return candidate


def seed_rate(give: str, get: str, spread: Decimal = Decimal("0.005")) -> str:
    """Units of `get` per unit of `give` at the sim oracle's starting prices (its default config), less
    `spread` in the maker's favour, to 4 decimals: the demo's quotes open near the fair rate."""
    from markets.management.commands.run_oracle import DEFAULT_CONFIG
    from oracle.simconfig import load_config

    config = load_config(DEFAULT_CONFIG)
    fair = Decimal(config.params(give).start) / Decimal(config.params(get).start)
    return str((fair * (1 - spread)).quantize(Decimal("0.0001")))
