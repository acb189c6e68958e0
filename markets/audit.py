"""Proof that the stored state is what the log says: chain, replay, and the four invariants.

Used by `manage.py verify_ledger`, the tests and the simulator.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from ledger import store
from markets import domain, projections, projections_actions
from markets.domain import actions, liquidation
from markets.models import Participant, Payout, Session, Settlement, stream_name


@dataclass
class StreamReport:
    session_id: str
    events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_session(session_id: str) -> StreamReport:
    report = StreamReport(session_id)
    events = list(store.iter_stream(stream_name(session_id)))
    report.events, problem = store.verify_chain(events)
    if problem is not None:
        report.problems.append(f"hash chain: {problem}")
        return report
    stored = projections.snapshot(session_id)
    try:
        rebuilt = projections.rebuild(session_id, events)
    except projections.ReplayError as exc:
        report.problems.append(f"replay: {exc}")
        return report
    for line in projections.diff(stored, rebuilt):
        report.problems.append(f"replay: {line}")
    report.problems.extend(_invariant_problems(session_id, events))
    report.problems.extend(_batch_problems(events))
    report.problems.extend(_margin_problems(events))
    report.problems.extend(_fixing_problems(session_id, events))
    report.problems.extend(_action_problems(events))
    return report


def _action_problems(events) -> list[str]:
    """Every corporate action applied made again: the holdings it names before are those the log gives
    there (`fastreplay.replay_holdings`), and the rule (`domain.actions.outcome`) makes the same q, moves,
    cash in lieu and leftover units from them and the prices it recorded."""
    from markets import fastreplay

    problems = []
    legs: list[str] = []
    scheduled: dict[int, dict] = {}
    initial: dict[int, list[int]] = {}
    for i, event in enumerate(events):
        if event.type == "SessionCreated":
            legs = list(event.data["legs"])
        elif event.type == "CorporateActionScheduled":
            scheduled[event.data["action"]] = event.data["params"]
        elif event.type == "InitialAllocationAssigned":
            initial = {int(u): list(row) for u, row in event.data.get("holdings_by_id", {}).items()}
        if event.type != "CorporateActionApplied":
            continue
        d = event.data
        before = {int(u): row for u, row in d["holdings_before"].items()}
        if fastreplay.replay_holdings(events[:i]).as_dict() != before:
            problems.append(f"event #{event.seq}: the holdings it names before differ from the log's")
        params = scheduled.get(d["action"], {})
        prices = [d.get("prices", {}).get(leg) for leg in legs]
        try:
            again = actions.outcome(d["kind"], d["leg"], params, legs, d["q_before"], before, prices)
        except domain.DomainError as exc:
            problems.append(f"event #{event.seq}: the action cannot be made again ({exc.message})")
            continue
        carried = actions.outcome(d["kind"], d["leg"], params, legs, d["q_before"], initial, prices)
        again |= {"initial_deltas_by_id": carried["deltas_by_id"], "initial_cash_by_id": carried["cash_by_id"]}
        for user, row in carried["deltas_by_id"].items():  # the initial allocation as the action carried it
            initial[int(user)] = [x + dx for x, dx in zip(initial[int(user)], row, strict=True)]
        differ = sorted(key for key, value in again.items() if d.get(key) != value)
        if differ:
            problems.append(f"event #{event.seq}: the action made again differs in {', '.join(differ)}")
    return problems


def _fixing_problems(session_id: str, events) -> list[str]:
    """Every oracle fixing made again from the ticks its record names and its rule (`oracle.fixing.redo`):
    the same value per leg as the settlement used, the same tier, reasons, ticks, sources and volume."""
    from oracle import fixing

    legs: list[str] = []
    problems = []
    for event in events:
        if event.type == "SessionCreated":
            legs = list(event.data["legs"])
        elif event.type == "SessionSettled" and (event.data.get("fixing") or {}).get("source") == "oracle":
            for line in fixing.redo(session_id, legs, event.data["fixing"], event.data["prices"]):
                problems.append(f"event #{event.seq} fixing: {line}")
    return problems


def _margin_problems(events) -> list[str]:
    """Bounded shorting redone from the log (`domain.margin_log`): every liquidation and deleveraging
    judged and planned again, invariant 2 with shorts after every move, and the ticks each names holding
    the prices it used."""
    from markets.domain import margin_log
    from oracle.models import Tick

    problems: list[str] = []
    for found in margin_log.walk(events):
        if isinstance(found, str):
            problems.append(found)
            continue
        at = next(e.at for e in events if e.seq == found.seq)
        for leg, price in found.prices.items():
            tick = Tick.objects.filter(id=found.ticks.get(leg)).first()
            if tick is None or tick.symbol != leg or tick.price != price or tick.at > at:
                problems.append(f"event #{found.seq}: tick {found.ticks.get(leg)} does not hold {leg}'s price {price}")
    return problems


def _batch_problems(events) -> list[str]:
    """Every batch cut again from the orders and ticks in the log: its book rebuilt from the log alone
    (`domain.batch_log`), the record checked exactly and re-cleared (`domain.batch.verify`: an edited fill
    or price is named), and the oracle ticks it names holding the prices it used, at or before the cut."""
    from markets.domain import batch, batch_log
    from oracle.models import Tick

    problems: list[str] = []
    for cut in batch_log.books(e for e in events if e.type in BATCH_TYPES):
        where = f"batch {cut.number} (event #{cut.seq})"
        problems.extend(f"{where}: {p}" for p in cut.problems)
        if cut.book is None:
            if cut.recorded.get("result") != "not_cleared":
                problems.append(f"{where}: it traded without the oracle's prices at the cut")
            continue
        problems.extend(f"{where}: {p}" for p in batch.verify(cut.book, cut.recorded))
        event = next(e for e in events if e.seq == cut.seq)
        cut_at = dt.datetime.fromisoformat(event.data["cut_at"])
        for leg, tick_id in event.data["ticks"].items():
            tick = Tick.objects.filter(id=tick_id).first()
            if tick is None or tick.symbol != leg or tick.price != event.data["reference"][leg] or tick.at > cut_at:
                problems.append(f"{where}: tick {tick_id} does not hold {leg}'s price at the cut")
    return problems


BATCH_TYPES = frozenset(
    {
        "SessionCreated",
        "SessionOpened",
        "OrderPlaced",
        "OrderCancelled",
        "BatchCleared",
        "TradingClosed",
        "SessionSettled",
    }
)


def _invariant_problems(session_id: str, events) -> list[str]:
    problems: list[str] = []
    session = Session.objects.filter(id=session_id).first()
    if session is None:
        return [f"session {session_id} has events but no projection"]
    matrix = projections.holdings_by_user(session_id)
    checks = []
    if matrix:
        checks.append(lambda: domain.check_conservation(matrix, session.q))
        checks.append(lambda: _check_bounds(matrix, session))
    for event in events:
        if event.type == "TradeExecuted":
            d = event.data
            checks.append(lambda d=d: domain.check_zero_sum(d["taker_deltas"], d["maker_deltas"]))
            moved = d["taker_deltas"]
            legs = session.legs
            if -moved[legs.index(d["give_leg"])] != d["give_qty"] or moved[legs.index(d["get_leg"])] != d["get_qty"]:
                problems.append(f"event #{event.seq}: trade deltas do not match its quantities")
            if domain.trade_receive(d["give_qty"], d["rate"]) != d["get_qty"]:
                problems.append(f"event #{event.seq}: get quantity is not floor(give x rate)")
    settlement = Settlement.objects.filter(session_id=session_id).first()
    if settlement is not None:
        prices = [settlement.prices[leg] for leg in session.legs]
        paid = dict(Payout.objects.filter(session_id=session_id).values_list("participant__user_id", "amount"))
        cash = projections_actions.cash_of(session_id)
        pool = domain.payout(session.q, prices) + sum(cash.values())
        cut = liquidation.haircut(actions.with_cash(domain.payouts(matrix, prices), cash), pool)
        recomputed = cut.paid
        rule = "x.S" if not cut.deficit else "x.S less the haircut"
        for user, amount in recomputed.items():
            if not _same_money(paid.get(user), amount):
                problems.append(
                    f"settlement: payout of user #{user} is {paid.get(user)}, {rule} gives {domain.money_str(amount)}"
                )
        if (settlement.deficit or "0") != (domain.money_str(cut.deficit) if cut.deficit else "0"):
            problems.append(f"settlement: recorded deficit {settlement.deficit or 0}, the payouts give {cut.deficit}")
        checks.append(lambda: domain.check_settlement_sum(recomputed, session.q, prices, sum(cash.values())))
        checks.append(lambda: domain.check_payouts_not_negative(recomputed))
        if not _same_money(settlement.total, pool):
            problems.append(f"settlement: recorded total {settlement.total} differs from q.S and the actions' cash")
    for check in checks:
        try:
            check()
        except domain.InvariantViolation as exc:
            problems.append(f"invariant: {exc.message}")
    return problems


def verify_all(session_ids: list[str] | None = None) -> list[StreamReport]:
    if session_ids is None:
        from_log = {domain.session_of_stream(s) for s in store.streams()} - {None}
        ids = sorted(from_log | set(Session.objects.values_list("id", flat=True)))
    else:
        ids = session_ids
    return [verify_session(sid) for sid in ids]


def verify_quick(session_ids: list[str] | None = None) -> list[StreamReport]:
    """The check for big logs, read-only, SQLite only: every stream's hash chain (`ledger.sqlite`, a process
    per core on large files) and every session's holdings replayed from its log (`markets.fastreplay`)
    against the stored ones, with invariants 1 and 2 on the replayed matrix. It does not rebuild RFQs,
    quotes, trades or the settlement: `verify_session` does.
    """
    from django.db import connection

    from ledger import sqlite as fast
    from markets import fastreplay

    if connection.vendor != "sqlite":
        raise ValueError("the quick check reads the SQLite file itself; on other databases use the full check")
    path = fast.database_file(connection.settings_dict)
    # Inside a transaction (the tests'), read through it; otherwise open the file read-only.
    db = connection if connection.in_atomic_block or path is None else path
    chains = fast.verify_log_raw(db)
    holdings = fastreplay.replay_log(db)
    sessions = {s.id: s for s in Session.objects.all()}
    ids = (
        session_ids
        if session_ids is not None
        else sorted(({domain.session_of_stream(s) for s in chains} - {None}) | set(sessions))
    )
    reports = []
    for sid in ids:
        report = StreamReport(sid)
        report.events, problem = chains.get(stream_name(sid), (0, None))
        session = sessions.get(sid)
        if problem is not None:
            report.problems.append(f"hash chain: {problem}")
        elif session is None:
            report.problems.append(f"session {sid} has events but no projection")
        else:
            found = holdings.get(stream_name(sid))
            replayed = found.as_dict() if found is not None else {}
            # An old log names holders by username; its participants keep the names it used.
            stored = projections.holdings_matrix(sid) if found is not None and found.by_name else None
            report.problems.extend(_holding_problems(stored or projections.holdings_by_user(sid), replayed, session))
        reports.append(report)
    return reports


def _holding_problems(stored: dict, replayed: dict, session: Session) -> list[str]:
    problems = []
    names = dict(Participant.objects.filter(session=session).values_list("user_id", "username"))
    for user in sorted(stored.keys() | replayed.keys(), key=str):
        if stored.get(user) != replayed.get(user):
            problems.append(
                f"replay: holdings of {_who(user, names)} are {stored.get(user)} but the log gives {replayed.get(user)}"
            )
            break
    if replayed:
        for check in (
            lambda: domain.check_conservation(replayed, session.q),
            lambda: _check_bounds(replayed, session),
        ):
            try:
                check()
            except domain.InvariantViolation as exc:
                problems.append(f"invariant: {exc.message}")
    return problems


def _check_bounds(matrix: dict, session: Session) -> None:
    """Invariant 2: nobody below zero; with shorting, nobody below minus the cap, the pool within it."""
    if not session.shorting:
        domain.check_non_negative(matrix)
        return
    n = len(session.legs)
    rows = list(matrix.values())
    lows = [min((row[k] for row in rows), default=0) for k in range(n)]
    shorts = [sum(-row[k] for row in rows if row[k] < 0) for k in range(n)]
    domain.check_short_bounds(lows, shorts, session.margin.caps(session.q))


def _who(holder: int | str, names: dict[int, str]) -> str:
    """A holder as an auditor reads it: the name it joined with and its immutable user id."""
    if isinstance(holder, str):  # an old log names holders by username
        return holder
    return f"{names[holder]} (user #{holder})" if holder in names else f"user #{holder}"


def _same_money(recorded: str | None, base: int) -> bool:
    """A recorded money string against the amount recomputed, as numbers: logs written before money was
    always printed with its 12 places (a zero payout read `0E-12`) stay verifiable."""
    try:
        return recorded is not None and Decimal(recorded) == domain.to_decimal(base, domain.MONEY_DP)
    except ArithmeticError:
        return False
