"""Settle a session at given prices or at the oracle's fixing; `--due` settles every timed session past t2."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from markets import domain, services
from markets.errors import DomainError
from markets.models import Payout, Session


class Command(BaseCommand):
    help = "Settle SESSION (with --price LEG=VALUE for every leg, or the oracle's fixing), or --due."

    def add_arguments(self, parser) -> None:
        parser.add_argument("session", nargs="?", help="Session id")
        parser.add_argument("--price", action="append", default=[], metavar="LEG=VALUE", help="Fixing price per leg")
        parser.add_argument(
            "--due",
            action="store_true",
            help="What the clock made due: open scheduled sessions past t1, expire quotes, close and settle timed "
            "sessions past t2",
        )

    def handle(self, *args, session: str | None, price: list[str], due: bool, **options) -> None:
        if due:
            if session or price:
                raise CommandError("--due takes no session or prices")
            outcomes = services.run_due()
            for sid, outcome in outcomes:
                self.stdout.write(f"{sid}: {outcome}")
            if not outcomes:
                self.stdout.write("nothing due")
            return
        if not session:
            raise CommandError("name a session to settle, or use --due")
        prices = None
        if price:
            prices = {}
            for item in price:
                leg, sep, value = item.partition("=")
                leg = leg.strip(" \t")  # ASCII blanks only: the services refuse a no-break space, never drop it
                if not sep or not leg or not value.strip(" \t"):
                    raise CommandError(f"--price {item!r}: write it as LEG=VALUE, e.g. AAPL=190.1")
                if leg in prices:
                    raise CommandError(f"--price {leg} is given twice: give one price per leg")
                prices[leg] = value  # read by the one reader of numbers (oracle.units): no line breaks
        try:
            settled = services.settle_session(None, session, prices=prices, by_hand=True)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self._report(settled)

    def _report(self, session: Session) -> None:
        s = session.settlement
        prices = ", ".join(f"{leg}={domain.price_str(s.prices[leg])}" for leg in session.legs)
        self.stdout.write(f"settled {session.id} at {prices}")
        for p in Payout.objects.filter(session=session).select_related("participant"):
            self.stdout.write(f"  {p.participant.username:<16} {p.amount:>28}")
        self.stdout.write(f"  {'total':<16} {s.total:>28}  (q.S = {s.expected})")
