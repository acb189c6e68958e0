"""The one code path from events to read models, used live (inside the command's transaction) and by
replay (`rebuild`). If it is not derived here, it is not in the projection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from ledger.models import Event
from ledger.store import iter_stream
from markets.models import RFQ, Holding, Participant, Payout, Quote, Session, Settlement, Trade

HANDLERS: dict[str, Callable[[Event, dict[str, Any]], None]] = {}


def handles(event_type: str):
    def register(fn):
        HANDLERS[event_type] = fn
        return fn

    return register


def session_id_of(stream: str) -> str:
    return stream.removeprefix("session-")


def apply(event: Event) -> None:
    """Apply one event to the read models and stamp the session with its version and seq."""
    handler = HANDLERS.get(event.type)
    if handler is None:
        raise ValueError(f"no projection for event type {event.type}")
    handler(event, event.data)
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE "markets_session" SET "version" = %s, "last_seq" = %s WHERE "id" = %s',
            [event.version, event.seq, session_id_of(event.stream)],
        )


def _parse_at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    return dt.datetime.fromisoformat(text)


def _participant(session_id: str, username: str) -> Participant:
    return Participant.objects.get(session_id=session_id, username=username)


def session_from_created(d: dict[str, Any], created_by, at: dt.datetime) -> Session:
    """The Session row a SessionCreated payload describes (unsaved; bulk loaders reuse it)."""
    return Session(
        id=d["session_id"],
        title=d.get("title", ""),
        legs=d["legs"],
        q=d["q"],
        t1=_parse_at(d.get("t1")),
        t2=_parse_at(d.get("t2")),
        start_mode=d["start_mode"],
        end_mode=d["end_mode"],
        allocation_mode=d["allocation_mode"],
        fixing_rule=d["fixing_rule"],
        status=Session.Status.CREATED,
        created_by=created_by,
        created_at=at,
    )


@handles("SessionCreated")
def _session_created(event: Event, d: dict[str, Any]) -> None:
    user = get_user_model().objects.get(username=d["created_by"])
    session_from_created(d, user, event.at).save(force_insert=True)


@handles("ParticipantJoined")
def _participant_joined(event: Event, d: dict[str, Any]) -> None:
    user = get_user_model().objects.get(username=d["username"])
    Participant.objects.create(
        session_id=session_id_of(event.stream),
        user=user,
        username=d["username"],
        role=d["role"],
        joined_at=event.at,
    )


@handles("InitialAllocationAssigned")
def _initial_allocation(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    Session.objects.filter(id=session_id).update(allocation_mode=d["mode"])
    legs = Session.objects.values_list("legs", flat=True).get(id=session_id)
    participants = {p.username: p for p in Participant.objects.filter(session_id=session_id)}
    Holding.objects.bulk_create(
        Holding(
            session_id=session_id,
            participant=participants[username],
            leg=leg,
            leg_index=k,
            qty=row[k],
            initial=row[k],
        )
        for username, row in sorted(d["holdings"].items())
        for k, leg in enumerate(legs)
    )


@handles("SessionOpened")
def _session_opened(event: Event, d: dict[str, Any]) -> None:
    Session.objects.filter(id=session_id_of(event.stream)).update(status=Session.Status.OPEN, opened_at=event.at)


@handles("RFQRequested")
def _rfq_requested(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    RFQ.objects.create(
        id=d["rfq_id"],
        session_id=session_id,
        taker=_participant(session_id, d["taker"]),
        give_leg=d["give_leg"],
        get_leg=d["get_leg"],
        quantity=d["quantity"],
        status=RFQ.Status.OPEN,
        created_at=event.at,
    )


@handles("QuoteProvided")
def _quote_provided(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    Quote.objects.create(
        id=d["quote_id"],
        rfq_id=d["rfq_id"],
        maker=_participant(session_id, d["maker"]),
        rate=d["rate"],
        expires_at=_parse_at(d["expires_at"]),
        status=Quote.Status.LIVE,
        created_at=event.at,
    )


@handles("QuoteWithdrawn")
def _quote_withdrawn(event: Event, d: dict[str, Any]) -> None:
    Quote.objects.filter(id=d["quote_id"]).update(status=Quote.Status.WITHDRAWN)


# Closing an RFQ and executing a trade are on the trade path: plain statements, not ORM queries (whose
# query building costs ~10x SQLite's own work here). Replay runs exactly this code too.


def _close_rfq(cursor, rfq_id: int, status: str, at: dt.datetime, filled_quote: int | None = None) -> None:
    """Close the RFQ; its filled quote (if any) is marked filled and every other live quote lapses."""
    cursor.execute(
        'UPDATE "markets_rfq" SET "status" = %s, "closed_at" = %s WHERE "id" = %s',
        [status, connection.ops.adapt_datetimefield_value(at), rfq_id],
    )
    cursor.execute(
        'UPDATE "markets_quote" SET "status" = CASE WHEN "id" = %s THEN %s ELSE %s END '
        'WHERE "rfq_id" = %s AND ("id" = %s OR "status" = %s)',
        [filled_quote, Quote.Status.FILLED, Quote.Status.LAPSED, rfq_id, filled_quote, Quote.Status.LIVE],
    )


@handles("RFQCancelled")
def _rfq_cancelled(event: Event, d: dict[str, Any]) -> None:
    with connection.cursor() as cursor:
        _close_rfq(cursor, d["rfq_id"], RFQ.Status.CANCELLED, event.at)


_PARTICIPANT_IDS_SQL = (
    'SELECT "username", "id" FROM "markets_participant" WHERE "session_id" = %s AND "username" IN (%s, %s)'
)
_MOVE_SQL = 'UPDATE "markets_holding" SET "qty" = "qty" + %s WHERE "participant_id" = %s AND "leg_index" = %s'
_TRADE_SQL = (
    'INSERT INTO "markets_trade" ("id", "session_id", "rfq_id", "quote_id", "taker_id", "maker_id", "give_leg", '
    '"get_leg", "give_qty", "get_qty", "rate", "executed_at", "seq") '
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


@handles("TradeExecuted")
def _trade_executed(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    with connection.cursor() as cursor:
        cursor.execute(_PARTICIPANT_IDS_SQL, [session_id, d["taker"], d["maker"]])
        ids = dict(cursor.fetchall())
        taker, maker = ids[d["taker"]], ids[d["maker"]]
        moves = [
            (delta, participant, k)
            for participant, deltas in ((taker, d["taker_deltas"]), (maker, d["maker_deltas"]))
            for k, delta in enumerate(deltas)
            if delta
        ]
        cursor.executemany(_MOVE_SQL, moves)
        _close_rfq(cursor, d["rfq_id"], RFQ.Status.FILLED, event.at, filled_quote=d["quote_id"])
        cursor.execute(
            _TRADE_SQL,
            [
                d["trade_id"],
                session_id,
                d["rfq_id"],
                d["quote_id"],
                taker,
                maker,
                d["give_leg"],
                d["get_leg"],
                d["give_qty"],
                d["get_qty"],
                d["rate"],
                connection.ops.adapt_datetimefield_value(event.at),
                event.seq,
            ],
        )


@handles("SettlementWaiting")
def _settlement_waiting(event: Event, d: dict[str, Any]) -> None:
    Session.objects.filter(id=session_id_of(event.stream)).update(waiting_reason=d["reason"])


@handles("SessionSettled")
def _session_settled(event: Event, d: dict[str, Any]) -> None:
    session_id = session_id_of(event.stream)
    Session.objects.filter(id=session_id).update(status=Session.Status.SETTLED, settled_at=event.at, waiting_reason="")
    Settlement.objects.create(
        session_id=session_id,
        prices=d["prices"],
        fixing=d["fixing"],
        total=d["total"],
        expected=d["expected"],
        settled_at=event.at,
        seq=event.seq,
    )
    participants = {p.username: p for p in Participant.objects.filter(session_id=session_id)}
    Payout.objects.bulk_create(
        Payout(session_id=session_id, participant=participants[u], amount=amount)
        for u, amount in sorted(d["payouts"].items())
    )


# ---------------------------------------------------------------- replay and comparison


def snapshot(session_id: str) -> dict[str, Any]:
    """Everything the projection holds for a session, as plain comparable values."""
    session = Session.objects.filter(id=session_id).values().first()
    if session is None:
        return {}
    return {
        "session": session,
        "participants": list(
            Participant.objects.filter(session_id=session_id)
            .order_by("username")
            .values_list("username", "role", "user_id", "joined_at")
        ),
        "holdings": list(
            Holding.objects.filter(session_id=session_id)
            .order_by("participant__username", "leg_index")
            .values_list("participant__username", "leg", "leg_index", "qty", "initial")
        ),
        # Participants are named by username: their row ids are not part of the log.
        "rfqs": list(
            RFQ.objects.filter(session_id=session_id).order_by("id").values(*_fields(RFQ, "taker"), "taker__username")
        ),
        "quotes": list(
            Quote.objects.filter(rfq__session_id=session_id)
            .order_by("id")
            .values(*_fields(Quote, "maker"), "maker__username")
        ),
        "trades": list(
            Trade.objects.filter(session_id=session_id)
            .order_by("id")
            .values(*_fields(Trade, "taker", "maker"), "taker__username", "maker__username")
        ),
        "settlement": Settlement.objects.filter(session_id=session_id).values().first(),
        "payouts": list(
            Payout.objects.filter(session_id=session_id)
            .order_by("participant__username")
            .values_list("participant__username", "amount")
        ),
    }


def _fields(model, *exclude: str) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if f.name not in exclude]


class _Rollback(Exception):
    pass


def rebuild(session_id: str, events: Iterable[Event] | None = None) -> dict[str, Any]:
    """Replay the stream into a fresh projection with the same `apply`, snapshot it, and roll back.

    The stored projection is untouched; the result can be compared with `snapshot(session_id)`.
    """
    result: dict[str, Any] = {}
    try:
        with transaction.atomic():
            Session.objects.filter(id=session_id).delete()
            stream = f"session-{session_id}"
            for event in events if events is not None else iter_stream(stream):
                apply(event)
            result = snapshot(session_id)
            raise _Rollback
    except _Rollback:
        pass
    return result


def diff(stored: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    """Human-readable differences between two snapshots (empty when equal)."""
    problems = []
    for key in sorted(set(stored) | set(rebuilt)):
        a, b = stored.get(key), rebuilt.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                if x != y:
                    problems.append(f"{key}[{i}]: stored {x!r} but replay gives {y!r}")
                    break
            else:
                problems.append(f"{key}: stored has {len(a)} rows, replay gives {len(b)}")
        else:
            problems.append(f"{key}: stored {a!r} but replay gives {b!r}")
    return problems


def holdings_matrix(session_id: str) -> dict[str, list[int]]:
    """{username: [x_k ...]} from the projection, in leg order."""
    matrix: dict[str, list[int]] = {}
    rows = (
        Holding.objects.filter(session_id=session_id)
        .order_by("participant__username", "leg_index")
        .values_list("participant__username", "qty")
    )
    for username, qty in rows:
        matrix.setdefault(username, []).append(qty)
    return matrix
