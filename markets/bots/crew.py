"""The bots as participants: their accounts, joining a session before it opens, and `Crew.step`, which
reads the market, lets each bot decide (`markets.bots.policy`) and carries out every intent through the
services as that bot's own user, so every rule the floor applies applies to them. A refusal is an
outcome, not a crash: it is recorded, logged in one line, and the bots go on. In a session with batch
auctions the bots place and cancel limit orders too (`markets.bots.auction`); by RFQ only where the session
trades by RFQ."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model

from markets import domain, services
from markets.bots import auction
from markets.bots.market import read_market
from markets.bots.policy import Intent, Maker, Params, Taker
from markets.errors import DomainError
from markets.models import Participant, Session
from oracle.units import short

MAKER_PREFIX = "bot-maker-"
TAKER_PREFIX = "bot-taker-"
MAX_MAKERS = 20
MAX_TAKERS = 50


def bot_names(makers: int, takers: int) -> list[tuple[str, str]]:
    """(username, role) of the first `makers` makers and `takers` takers: bot-maker-1.., bot-taker-1..."""
    return [(f"{MAKER_PREFIX}{i}", Participant.Role.MAKER) for i in range(1, makers + 1)] + [
        (f"{TAKER_PREFIX}{i}", Participant.Role.TRADER) for i in range(1, takers + 1)
    ]


def ensure_users(names: list[tuple[str, str]]) -> dict:
    """The bots' accounts, made when missing: no password anyone can sign in with, never staff."""
    User = get_user_model()
    users = {}
    for name, _role in names:
        user, created = User.objects.get_or_create(username=name)
        if created or user.is_staff or user.is_superuser or not user.is_active:
            if created:
                user.set_unusable_password()
            user.is_staff = user.is_superuser = False
            user.is_active = True
            user.save()
        users[name] = user
    return users


def not_joined(session: Session, names: list[tuple[str, str]]) -> list[str]:
    """The bots of `names` that are not in `session` in their role (a maker must have joined as maker)."""
    joined = dict(
        Participant.objects.filter(session=session, username__in=[n for n, _ in names]).values_list("username", "role")
    )
    return [name for name, role in names if joined.get(name) != role]


def join_bots(session_id: str, makers: int, takers: int) -> list[str]:
    """Join the bots not yet in a session that has not opened, each in its role (the system adds them, as
    an organiser would, so a participants-only session takes them too). Returns who joined."""
    names = bot_names(makers, takers)
    ensure_users(names)
    session = Session.objects.get(id=session_id)
    joined = []
    for name, role in names:
        if name in not_joined(session, [(name, role)]):
            services.join_session(None, session_id, role, username=name)
            joined.append(name)
    return joined


@dataclass(frozen=True)
class Action:
    """An intent carried out: `outcome` is "ok" or the refusal's code; `made` the new RFQ, quote or trade."""

    intent: Intent
    outcome: str
    message: str = ""
    made: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def traded(self) -> bool:
        return self.ok and self.intent.kind == "accept"

    def key(self) -> tuple:
        """What was done and how it ended, without the database's ids (those differ between sessions)."""
        i = self.intent
        return (i.bot, i.kind, i.give_leg, i.get_leg, i.quantity, i.rate, i.ttl, self.outcome)

    def line(self) -> str:
        i = self.intent
        what = f"{short(i.quantity, domain.QTY_DP)} {i.give_leg} -> {i.get_leg}"
        rate = short(i.rate or 0, domain.RATE_DP)
        if i.kind == "rfq":
            done = f"rfq {what}"
        elif i.kind == "quote":
            done = f"quote rfq {i.ref} ({what}) at {rate}, {i.ttl}s"
        elif i.kind == "accept":
            done = f"accept quote {i.ref} at {rate} ({what})"
        elif i.kind == "cancel":
            done = f"cancel rfq {i.ref} ({what})"
        elif i.kind == "order":
            done = f"order {what} at limit {rate}"
        elif i.kind == "cancel_order":
            done = f"cancel order {i.ref} ({what} at limit {rate})"
        else:
            done = f"withdraw quote {i.ref} at {rate} ({what})"
        if self.ok:
            made = {"rfq": " -> rfq", "quote": " -> quote", "accept": " -> trade", "order": " -> order"}.get(i.kind, "")
            return f"{i.bot} {done}{f'{made} {self.made}' if made and self.made else ''}"
        return f"refused: {i.bot} {done}: {self.message} ({self.outcome})"


class Crew:
    """`makers` makers and `takers` takers in one session, deciding from `random.Random(seed)` and what
    they read. Each `step(now)` gives every bot one turn (takers, then makers, each in name order) and
    returns what they did: by RFQ where the session trades by RFQ, then by limit order where it trades by
    batch auction."""

    def __init__(self, session_id: str, makers: int, takers: int, seed: int, params: Params | None = None) -> None:
        self.session_id = session_id
        self.params = params or Params()
        self.rng = random.Random(seed)
        names = bot_names(makers, takers)
        self.users = ensure_users(names)
        self.makers = [Maker(name, self.params) for name, role in names if role == Participant.Role.MAKER]
        self.takers = [Taker(name, self.params) for name, role in names if role == Participant.Role.TRADER]
        self.names = [name for name, _ in names]
        self.actions = self.trades = self.refusals = 0

    def session(self) -> Session:
        return Session.objects.get(id=self.session_id)

    def step(self, now: dt.datetime, stop: Callable[[], bool] = lambda: False) -> list[Action]:
        """One turn each, while the session trades; `stop()` is asked between two actions, so a stop
        request never cuts one (each is one service call, one transaction)."""
        done: list[Action] = []
        for bot in [*self.takers, *self.makers]:
            session = self.session()
            if not session.trading_open(now):
                break
            market = read_market(session, self.names, now)
            intents = []
            if market.by_rfq:
                intents += bot.plan(market, self.rng, now) if isinstance(bot, Taker) else bot.plan(market, self.rng)
            if market.by_batch and intents and session.shorting:  # its orders judged on what its trades left
                if not self._carry_out_all(intents, bot, done, stop):
                    return done
                intents, market = [], read_market(session, self.names, now)
            if market.by_batch:
                decide = auction.taker_orders if isinstance(bot, Taker) else auction.maker_orders
                intents += decide(bot.name, self.params, market, self.rng, now)
            if not self._carry_out_all(intents, bot, done, stop):
                return done
        return done

    def _carry_out_all(self, intents: list[Intent], bot, done: list[Action], stop: Callable[[], bool]) -> bool:
        """Each intent in turn; False when `stop()` asked to stop first."""
        for intent in intents:
            if stop():
                return False
            done.append(self._carry_out(intent, bot))
        return True

    def _carry_out(self, intent: Intent, bot: Maker | Taker) -> Action:
        user = self.users[intent.bot]
        made = None
        try:
            if intent.kind == "rfq":
                qty = domain.qty_str(intent.quantity)
                made = services.request_rfq(user, self.session_id, intent.give_leg, intent.get_leg, qty).id
            elif intent.kind == "quote":
                rate = domain.rate_str(intent.rate or 0)
                made = services.provide_quote(user, intent.ref, rate, intent.ttl).id
            elif intent.kind == "accept":
                made = services.accept_quote(user, intent.ref).id
            elif intent.kind == "cancel":
                services.cancel_rfq(user, intent.ref)
            elif intent.kind == "withdraw":
                services.withdraw_quote(user, intent.ref)
            elif intent.kind == "order":
                qty, limit = domain.qty_str(intent.quantity), domain.rate_str(intent.rate or 0)
                made = services.place_order(user, self.session_id, intent.give_leg, intent.get_leg, qty, limit).id
            elif intent.kind == "cancel_order":
                services.cancel_order(user, intent.ref)
            else:
                raise AssertionError(f"unknown intent {intent.kind}")
            action = Action(intent, "ok", made=made)
        except DomainError as exc:
            if intent.kind == "accept" and isinstance(bot, Taker) and intent.ref is not None:
                bot.refused.add(intent.ref)
            action = Action(intent, exc.code, exc.message.replace("\n", " "))
        self.actions += 1
        self.trades += action.traded
        self.refusals += not action.ok
        return action
