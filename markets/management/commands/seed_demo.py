"""Seed the seed's demo (idempotent): users, session `demo`, allocation, and open RFQs with quotes.
With `--bots MAKERS,TAKERS` the session, when this run creates it, also gets bot accounts as participants
(bot-maker-1.., bot-taker-1..: `manage.py run_bots` trades as them), joined before it opens.

The demo's accounts are members of `markets.demo.DEMO_GROUP`, the only accounts demo mode's switcher
signs in as. None of them is staff or a superuser: the organiser runs sessions with the `add_session`
permission and the floor's organiser controls, not the admin (make an admin with `createsuperuser`;
`./start-demo.sh` makes one called `admin` and keeps its password in `.demo/admin-password`).

Passwords: an account this run makes gets `--password` (`demo`), or its line of `.demo/passwords` when that
file exists. `--passwords-file FILE` (./start-demo.sh on the network) makes FILE with random passwords when
it is missing and gives them to every demo account then; later runs keep it.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError

from markets import demo, domain, services
from markets.bots import bot_names, join_bots, not_joined
from markets.bots.crew import MAX_MAKERS, MAX_TAKERS
from markets.errors import DomainError
from markets.models import RFQ, Holding, Session

DEMO_PASSWORD = "demo"
USERS = [("organiser", True), ("alice", False), ("bob", False), ("mm", False)]  # (name, organises)
LEGS = ["AAPL", "NVDA", "META", "ORCL"]
Q = [100, 60, 80, 120]


class Command(BaseCommand):
    help = "Create the demo users and session `demo` (AAPL NVDA META ORCL, q = 100/60/80/120). Safe to run twice."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--session-id", default="demo")
        parser.add_argument(
            "--password",
            help=f"Password for the demo users this run makes (default {DEMO_PASSWORD!r}, or .demo/passwords if it exists)",
        )
        parser.add_argument(
            "--passwords-file",
            metavar="FILE",
            help="Random passwords for the demo users, made in FILE (mode 600) if missing, kept if not",
        )
        parser.add_argument(
            "--bots",
            metavar="MAKERS,TAKERS",
            help="Join this many bot makers and takers to the session when it is created (e.g. 2,3)",
        )

    def handle(
        self,
        *args,
        session_id: str,
        password: str | None = None,
        passwords_file: str | None = None,
        bots: str | None = None,
        **options,
    ) -> None:
        crew = parse_bots(bots) if bots is not None else None
        names = [name for name, _ in USERS]
        kept, made, source = _passwords(names, password, passwords_file)
        User = get_user_model()
        group, _ = Group.objects.get_or_create(name=demo.DEMO_GROUP)
        may_create = Permission.objects.get(codename="add_session", content_type__app_label="markets")
        users = {}
        for name, organises in USERS:
            user, created = User.objects.get_or_create(username=name)
            if created or name in made:
                user.set_password(kept[name])
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
                if crew is not None:
                    join_bots(session_id, *crew)
            session = Session.objects.get(id=session_id)
            if session.status == Session.Status.CREATED:
                services.open_session(users["organiser"], session_id)
            session.refresh_from_db()
            if session.status == Session.Status.OPEN and not RFQ.objects.filter(session=session).exists():
                # Quotes near the oracle-implied rate (its starting prices), a little in the maker's favour.
                for taker, give, get, wanted in (("alice", "AAPL", "NVDA", "10"), ("bob", "ORCL", "META", "12")):
                    rate = seed_rate(give, get)
                    size = _seed_size(session, wanted, (taker, give), ("mm", get), rate)
                    rfq = services.request_rfq(users[taker], session_id, give, get, size)
                    services.provide_quote(users["mm"], rfq.id, rate, ttl_seconds=3600)
        except DomainError as exc:
            raise CommandError(f"seeding failed: {exc.message}") from None
        said = f"passwords in {source}" if source else f"password '{kept[names[0]]}'"
        self.stdout.write(
            f"demo ready: session {session_id}; users {', '.join(names)} ({said}; organiser runs sessions from the floor)"
        )
        if crew is not None:
            self.stdout.write(bots_line(Session.objects.get(id=session_id), *crew))


def _passwords(names: list[str], password: str | None, path: str | None) -> tuple[dict[str, str], set[str], str]:
    """Each demo user's password for an account made now; the users to give it to even if they exist (all
    of them when `path` is made); the file the passwords are kept in, if they are."""
    if path is not None:
        try:
            return (*demo.keep_passwords(names, Path(path)), path)
        except OSError as exc:
            raise CommandError(f"--passwords-file {path}: {exc.strerror}") from None
    listed = demo.read_passwords() if password is None else {}
    if listed and all(name in listed for name in names):
        return listed, set(), str(demo.PASSWORDS_FILE.relative_to(demo.PASSWORDS_FILE.parents[1]))
    return dict.fromkeys(names, password or DEMO_PASSWORD), set(), ""


def parse_bots(text: str) -> tuple[int, int]:
    """`MAKERS,TAKERS` (e.g. 2,3) as two whole numbers within run_bots' limits."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise CommandError(f"--bots {str(text)[:20]!r}: write MAKERS,TAKERS, e.g. --bots 2,3")
    makers, takers = int(parts[0]), int(parts[1])
    if makers > MAX_MAKERS or takers > MAX_TAKERS or makers + takers == 0:
        raise CommandError(f"--bots {text}: 0 to {MAX_MAKERS} makers and 0 to {MAX_TAKERS} takers, at least one bot")
    return makers, takers


def bots_line(session: Session, makers: int, takers: int) -> str:
    """Whether the bots are in the session (start-demo.sh reads this line to start them or not)."""
    missing = not_joined(session, bot_names(makers, takers))
    if not missing:
        return f"bots ready: {makers} makers, {takers} takers in session {session.id}"
    return (
        f"bots not added: session {session.id} opened without them (participants join only before a session "
        "opens); start the demo afresh with its bots: ./start-demo.sh --reset --bots"
    )


def _seed_size(session: Session, wanted: str, taker: tuple[str, str], maker: tuple[str, str], rate: str) -> str:
    """A seeded RFQ's size: `wanted`, or less when more participants (bots) joined and the shares are
    smaller, so that the taker holds it and mm can deliver it at `rate`."""

    def held(name: str, leg: str) -> int:
        return Holding.objects.get(session=session, participant__username=name, leg=leg).qty

    deliverable = held(*maker) * domain.RATE_SCALE // domain.parse_rate(rate)
    size = min(domain.parse_qty(wanted), held(*taker), deliverable)
    return domain.qty_str(size - size % 10**4)


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
