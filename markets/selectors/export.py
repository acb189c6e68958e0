"""Data out: one session's log, trades, holdings over time, ticks, orders and batch fills, payouts, the fixing and
settlement reconciliation as CSV tables, and one zip of them (written by `export_files`). `manage.py
export`, the API and the floor's downloads all take their rows from here, so the three edges hand out the
same bytes.

Numbers are exact decimal strings in the API's formats (`domain.qty_str`, `rate_str`, `price_str`,
`money_str`); times are UTC with microseconds, exactly as the ledger hashes them (`chain.format_at`).
Every table is read as of one cut, the session's last event when the export began (its seq) and its last
tick then: a trade committed meanwhile is in none of the tables rather than in some of them.
Holdings over time are the events replayed in order with the deltas they recorded (what the projection
applies: trades and batch fills), never recomputed by a second set of rules; so are orders and fills
(`export_batch`). Others' orders still sealed stay sealed in events.csv and orders.csv for a viewer who
does not see every order (`selectors.sealed`), as on the floor and in the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.db.models import Max, QuerySet

from ledger.chain import format_at
from ledger.models import Event
from ledger.store import canonical_json
from markets import access, domain
from markets.errors import Conflict, Forbidden, NotFound
from markets.models import Participant, Session, Trade
from markets.selectors import actions, export_batch, export_fixing, export_margin
from markets.selectors.api import trade_out
from markets.selectors.export_files import (  # noqa: F401  (the writing, for every edge)
    FORMULA_START,
    NUMBER,
    csv_text,
    spreadsheet_safe,
    write_csv,
    write_zip,
    zip_bytes,
    zip_name,
)
from markets.selectors.export_replay import HOLDING_EVENTS, Replay  # noqa: F401 (the replay, for every table)
from markets.selectors.results import money_base, money_text, session_results
from markets.selectors.sealed import Seal, sees_all_orders
from oracle.models import Tick

TABLES = ("events", "trades", "holdings", "ticks", "orders", "fills", "actions", "payouts", "reconciliation", "fixing")
SETTLED_ONLY = frozenset({"payouts", "reconciliation", "fixing"})
# Tables only a session that allows shorting has (`export_margin`); with them, every table there is. A
# session without shorting exports exactly the TABLES it always did.
SHORTING_ONLY = ("margin",)
ALL_TABLES = (*TABLES, *SHORTING_ONLY)
PAID = ("payout", "initial_value", "pnl")  # payouts.csv's money columns (and its totals row's)
# What the floor lets every viewer of a session download; its organiser and staff download all TABLES.
FOR_EVERY_VIEWER = ("events", "trades", "ticks", "orders", "fills", "actions", "payouts", "fixing")
CHUNK = 2000
# The person an event's data names as acting (`<side>_id`, or a legacy log's username); for
# ParticipantJoined the one who joined; any other event's `by_id` if it has one. The log does not record
# who opened, settled, withdrew a quote or cancelled an RFQ: their actor is left empty.
ACTOR = {
    "SessionCreated": "created_by",
    "ParticipantJoined": "user",
    "RFQRequested": "taker",
    "QuoteProvided": "maker",
    "TradeExecuted": "taker",
    "OrderPlaced": "user",
    "OrderCancelled": "user",
}
EVERYTHING = object()  # the viewer of an operator's export (`manage.py export`): every order whole


@dataclass
class Table:
    """One CSV table: its header and its rows, each a list of strings (read once, lazily)."""

    name: str
    header: list[str]
    rows: Iterable[list[str]]

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"


# ---------------------------------------------------------------- what may be asked for, and by whom


def table_name(value: object) -> str:
    """A table as a caller names it (`events` or `events.csv`); an unknown name is refused, listing the others."""
    name = str(value).strip().removesuffix(".csv")
    if name not in ALL_TABLES:
        raise NotFound(f"Unknown table {str(value)[:40]!r}: export one of {', '.join(ALL_TABLES)}", "unknown_table")
    return name


def find_session(session_id: object) -> Session:
    """The session an operator names (the CLI is trusted: no visibility rule), or NotFound."""
    sid = str(session_id)
    session = Session.objects.filter(id=sid).first() if domain.SESSION_ID.fullmatch(sid) else None
    if session is None:
        raise NotFound(f"Unknown session {sid[:64]!r}", "session_not_found")
    return session


def require_settled(session: Session, table: str) -> None:
    if table in SETTLED_ONLY and session.status != Session.Status.SETTLED:
        raise Conflict(
            f"Session {session.id} is not settled ({session.status}): {table}.csv exists once it settles", "not_settled"
        )
    if table in SHORTING_ONLY and not session.shorting:
        raise Conflict(f"Session {session.id} does not allow shorting: it has no {table}.csv", "not_shorting")


def available(session: Session, tables: Sequence[str] = ALL_TABLES) -> list[str]:
    """The tables of `tables` the session has now: payouts and reconciliation only once it settled, margin
    only where it allows shorting."""
    return [
        t
        for t in tables
        if (t not in SETTLED_ONLY or session.status == Session.Status.SETTLED)
        and (t not in SHORTING_ONLY or session.shorting)
    ]


def downloadable(session: Session, user) -> tuple[str, ...]:
    """What the floor lets `user` (who may see the session) download: everything for the session's
    organiser and for staff and auditors; the log, trades, ticks, orders, fills and payouts for any other
    viewer (the other holders' paths through the session stay with the organiser, as on the floor's own
    panels; others' sealed orders stay sealed in the log and orders.csv)."""
    if user is None or not user.is_authenticated:
        return ()
    if user.is_staff or access.sees_everything(user):
        return ALL_TABLES
    organiser = Participant.objects.filter(session_id=session.id, user=user, role=Participant.Role.ORGANISER)
    return ALL_TABLES if organiser.exists() else FOR_EVERY_VIEWER


def require_downloadable(session: Session, user, table: str) -> None:
    if table not in downloadable(session, user):
        raise Forbidden(f"Only the session's organiser, staff and auditors can export {table}.csv", "not_organiser")


# ---------------------------------------------------------------- one session, as of one cut


def _chunked(qs: QuerySet, key: str) -> Iterator[Any]:
    """Every row of `qs` in `key` order, read CHUNK rows at a time (no server-side cursor needed)."""
    last = None
    while True:
        batch = list((qs if last is None else qs.filter(**{f"{key}__gt": last})).order_by(key)[:CHUNK])
        yield from batch
        if len(batch) < CHUNK:
            return
        last = getattr(batch[-1], key)


class SessionExport:
    """The tables of one session as of now: the cut is taken here, every table reads up to it. `viewer`:
    whose export it is (the orders they may read whole); EVERYTHING for the operator's CLI."""

    def __init__(self, session: Session, viewer: Any = EVERYTHING) -> None:
        self.session = session
        self.viewer = None if viewer is EVERYTHING else viewer
        self.whole = viewer is EVERYTHING or sees_all_orders(session, viewer)
        self.legs: list[str] = list(session.legs)
        self.cut: int = session.last_seq
        self.tick_cut: int = Tick.objects.filter(session_id=session.id).aggregate(m=Max("id"))["m"] or 0
        people = Participant.objects.filter(session_id=session.id).values_list("user_id", "username", "display_name")
        self.names: dict[int, str] = {uid: username for uid, username, _ in people}  # the accounts
        self.shown: dict[int, str] = {uid: name for uid, _, name in people}  # the names people see
        self.ids_by_name: dict[str, int] = {username: uid for uid, username, _ in people}

    def table(self, name: str) -> Table:
        """The table `name` (see `table_name`), refused with `not_settled` where it needs a settlement."""
        name = table_name(name)
        require_settled(self.session, name)
        return getattr(self, f"_{name}")()

    def events(self, types: Sequence[str] | None = None) -> Iterator[Event]:
        events = Event.objects.filter(stream=self.session.stream, seq__lte=self.cut)
        return _chunked(events if types is None else events.filter(type__in=types), "seq")

    @cached_property
    def book(self) -> export_batch.Book:
        """Every order and fill as of the cut, from the log (read once, when a table needs it)."""
        return export_batch.Book(self.events(export_batch.BOOK_EVENTS))

    def seals(self, order_id: int, owner: int | None, hidden: set[int]) -> bool:
        """Whether this export's viewer reads the order sealed: another's order, sealed as of the cut."""
        return not self.whole and order_id in hidden and owner != getattr(self.viewer, "pk", None)

    def user_of(self, d: dict[str, Any], side: str) -> int | None:
        """The user id an event's data names on `side`; a legacy log names people by username."""
        if f"{side}_id" in d:
            return d[f"{side}_id"]
        name = d.get("username" if side == "user" else side)
        return self.ids_by_name.get(name) if isinstance(name, str) else None

    def order(self, users: Iterable[int]) -> list[int]:
        """Holders as the API lists them: by the name they joined with, then by id."""
        return sorted(users, key=lambda u: (self.names.get(u, ""), u))

    # ------------------------------------------------------------ the tables

    def _events(self) -> Table:
        def rows() -> Iterator[list[str]]:
            seal = None if self.whole else Seal(self.session.id, self.viewer, hidden=self.book.hidden)
            for e in self.events():
                data = e.data
                shown = data if seal is None else seal.payload(e.type, data)
                actor = self.user_of(shown, ACTOR.get(e.type, "by"))
                text = e.payload if shown is data else canonical_json(shown)  # a sealed row says so
                yield [str(e.seq), e.stream, str(e.version), e.type, format_at(e.at),
                       "" if actor is None else str(actor), text, e.prev_hash, e.hash]  # fmt: skip

        header = ["seq", "stream", "version", "type", "at", "actor_user_id", "data", "prev_hash", "hash"]
        return Table("events", header, rows())

    def _trades(self) -> Table:
        trades = Trade.objects.filter(session_id=self.session.id, seq__lte=self.cut).select_related("taker", "maker")

        def rows() -> Iterator[list[str]]:
            for t in _chunked(trades, "id"):
                out = trade_out(t)  # the API's own shape: the same strings field for field
                yield [str(t.id), format_at(t.executed_at), str(t.taker.user_id), out["taker"], out["taker_name"],
                       str(t.maker.user_id), out["maker"], out["maker_name"], out["give_leg"], out["give_qty"],
                       out["get_leg"], out["get_qty"], out["rate"], str(t.quote_id), str(t.rfq_id), str(t.seq)]  # fmt: skip

        header = ["id", "executed_at", "taker_id", "taker", "taker_name", "maker_id", "maker", "maker_name",
                  "give_leg", "give_qty", "get_leg", "get_qty", "rate", "quote_id", "rfq_id", "seq"]  # fmt: skip
        return Table("trades", header, rows())

    def _holdings(self) -> Table:
        def rows() -> Iterator[list[str]]:
            replay = Replay(self)
            for event in replay.steps():
                at = format_at(event.at)
                for user in self.order(replay.holdings):
                    for leg, x in zip(self.legs, replay.holdings[user], strict=True):
                        yield [str(event.seq), at, event.type, str(user), self.names.get(user, ""),
                               self.shown.get(user, ""), leg, domain.qty_str(x)]  # fmt: skip

        return Table("holdings", ["seq", "at", "event", "user_id", "username", "name", "leg", "quantity"], rows())

    def _ticks(self) -> Table:
        ticks = Tick.objects.filter(session_id=self.session.id, symbol__in=self.legs, id__lte=self.tick_cut)

        def rows() -> Iterator[list[str]]:
            for t in _chunked(ticks, "id"):
                yield [str(t.id), format_at(t.at), t.symbol, domain.price_str(t.price), t.source]

        return Table("ticks", ["id", "ts", "leg", "price", "source"], rows())

    def _orders(self) -> Table:
        return Table("orders", export_batch.ORDER_HEADER, export_batch.order_rows(self))

    def _fills(self) -> Table:
        return Table("fills", export_batch.fill_header(self.legs), export_batch.fill_rows(self))

    def _payouts(self) -> Table:
        """The results (`selectors.results`, as the page and the API rank them), with x at the settlement."""

        def rows() -> Iterator[list[str]]:
            results = session_results(self.session)  # nothing moves after the settlement: the cut holds
            cash = {u: money_base(c or "0") for u, c in Participant.objects.filter(session_id=self.session.id)
                    .values_list("user_id", "cash")}  # fmt: skip
            for r in results.rows:
                yield [str(r.rank), str(r.user_id), r.username, r.name, r.role, *map(domain.qty_str, r.x),
                       r.payout_str, r.initial_value_str, r.pnl_str, money_text(cash.get(r.user_id, 0))]  # fmt: skip
            held, total = [sum(r.x[k] for r in results.rows) for k in range(len(self.legs))], results.totals()
            paid_in = money_text(sum(cash.get(r.user_id, 0) for r in results.rows))
            yield ["", "", "", "total", "", *map(domain.qty_str, held), *(total[c] for c in PAID), paid_in]

        header = ["rank", "user_id", "username", "name", "role", *(f"x:{leg}" for leg in self.legs), *PAID, "cash"]
        return Table("payouts", header, rows())

    def _reconciliation(self) -> Table:
        header = ["kind", "user_id", "username", "name", "leg", "x_i", "S_t2", "fixing", "tick_ids", "x_i*S_t2",
                  "seqs", "payout", "expected", "equal", *export_fixing.RECONCILIATION_EXTRA]  # fmt: skip
        rows = (row + [""] * (len(header) - len(row)) for row in _reconciliation_rows(self))
        return Table("reconciliation", header, rows)

    def _fixing(self) -> Table:
        return Table("fixing", export_fixing.FIXING_HEADER, export_fixing.fixing_rows(self))

    def _actions(self) -> Table:
        """Each corporate action from the log as of the cut: scheduled, and what it did once applied."""
        rows = actions.action_rows(self.legs, self.events(actions.ACTION_EVENTS))
        return Table("actions", actions.ACTIONS_HEADER, rows)

    def _margin(self) -> Table:
        return Table("margin", export_margin.margin_header(self.legs), export_margin.margin_rows(self, Replay(self)))


def _reconciliation_rows(export: SessionExport) -> Iterator[list[str]]:
    """The settlement reconciliation report, recomputed from the log in exact integers:

    leg rows         x_i, S_t2 and the ticks it came from, x_i*S_t2, the seqs that made x_i
                     (the allocation and each trade that moved this participant's leg)
    cash rows        a holder's cash from corporate actions (dividends, cash in lieu, mergers), in x_i*S_t2
    participant rows payout = the sum of its leg rows and its cash; expected = what the settlement paid; equal
    basket rows      q_k, S_t2, q_k*S_t2; then the cash paid into the pool, if any
    total row        the sum of the payouts; expected = q*S_t2 + the cash; equal (invariant 4: always, exactly)
    recorded row     the settlement's own total and q*S_t2 as the event states them; equal
    """
    replay = Replay(export).run()
    settled = replay.settled
    assert settled is not None
    record = export_fixing.settled_record(export, settled)
    how = [export_fixing.leg_text(record, leg) for leg in record.legs]
    extra = export_fixing.reconciliation_cells(record, export.legs)
    prices = [int(settled["prices"][leg]) for leg in export.legs]
    sources = [" ".join(str(t) for t in record.ticks.get(leg, [])) for leg in export.legs]
    paid = replay.paid()
    total = 0
    q = list(export.session.q)
    cash = {int(u): money_base(v) for u, v in settled.get("cash_by_id", {}).items()}  # corporate actions'
    gross = {user: domain.payout(row, prices) + cash.get(user, 0) for user, row in replay.holdings.items()}
    pool = domain.payout(q, prices) + sum(cash.values())
    cut = export_margin.settlement_cut(gross, pool)  # a fixing outside the box only
    for user in export.order(replay.holdings):
        name = [export.names.get(user, ""), export.shown.get(user, "")]
        row = replay.holdings[user]
        for k, leg in enumerate(export.legs):
            seqs = " ".join(str(s) for s in replay.made.get((user, k), []))
            yield ["leg", str(user), *name, leg, domain.qty_str(row[k]), domain.price_str(prices[k]), how[k],
                   sources[k], domain.money_str(row[k] * prices[k]), seqs, "", "", "", *extra[leg]]  # fmt: skip
        if cash.get(user):
            yield ["cash", str(user), *name, "", "", "", "", "", domain.money_str(cash[user]), "", "", "", ""]
        if cut is not None:
            yield from export_margin.participant_lines(user, name, cut, settled.get("haircut", {}))
        payout = gross[user] if cut is None else cut.paid[user]
        total += payout
        recorded = paid.get(user, "")
        yield ["participant", str(user), *name, "", "", "", "", "", "", "", domain.money_str(payout), recorded,
               _equal(domain.money_str(payout), recorded)]  # fmt: skip
    for k, leg in enumerate(export.legs):
        yield ["basket", "", "", "", leg, domain.qty_str(q[k]), domain.price_str(prices[k]), how[k], sources[k],
               domain.money_str(q[k] * prices[k]), "", "", "", "", *extra[leg]]  # fmt: skip
    if cash:
        yield ["cash", "", "", "", "", "", "", "", "", domain.money_str(sum(cash.values())), "", "", "", ""]
    if cut is not None:
        yield from export_margin.waterfall_lines(cut, settled.get("haircut", {}))
    expected = domain.money_str(pool)
    yield ["total", "", "", "", "", "", "", "", "", "", "", domain.money_str(total), expected,
           _equal(domain.money_str(total), expected)]  # fmt: skip
    yield ["recorded", "", "", "", "", "", "", "", "", "", "", settled["total"], settled["expected"],
           _equal(settled["total"], settled["expected"])]  # fmt: skip


def _equal(a: str, b: str) -> str:
    """Two exact money strings compared as numbers (a legacy log may write fewer places)."""
    try:
        return "true" if Decimal(a) == Decimal(b) else "false"
    except ArithmeticError:
        return "false"
