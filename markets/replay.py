"""Replay and comparison: a session's read models as plain values (`snapshot`), the log replayed into a
fresh projection by the same `projections.apply` and rolled back (`rebuild`), and the differences between
two snapshots (`diff`). What `verify_ledger` and the tests compare; re-exported by `markets.projections`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import DatabaseError, transaction

from ledger.models import Event
from ledger.store import iter_stream
from markets import domain, projections, projections_actions, projections_batch
from markets.models import RFQ, Holding, Participant, Payout, Quote, Session, Settlement, Trade


def snapshot(session_id: str) -> dict[str, Any]:
    """Everything the projection holds for a session, as plain comparable values."""
    session = Session.objects.filter(id=session_id).values().first()
    if session is None:
        return {}
    return {
        "session": session,
        "participants": list(
            Participant.objects.filter(session_id=session_id)
            .order_by("user_id")
            .values_list(
                "user_id", "username", "display_name", "role", "joined_at", "liquidated_at", "liquidation_pending"
            )
        ),
        "holdings": list(
            Holding.objects.filter(session_id=session_id)
            .order_by("participant__user_id", "leg_index")
            .values_list("participant__user_id", "leg", "leg_index", "qty", "initial", "reserved")
        ),
        # Participants are named by user id: their row ids are not part of the log.
        "rfqs": list(
            RFQ.objects.filter(session_id=session_id).order_by("id").values(*_fields(RFQ, "taker"), "taker__user_id")
        ),
        "quotes": list(
            Quote.objects.filter(rfq__session_id=session_id)
            .order_by("id")
            .values(*_fields(Quote, "maker"), "maker__user_id")
        ),
        "trades": list(
            Trade.objects.filter(session_id=session_id)
            .order_by("id")
            .values(*_fields(Trade, "taker", "maker"), "taker__user_id", "maker__user_id")
        ),
        **projections_batch.snapshot(session_id),
        **projections_actions.snapshot(session_id),
        "settlement": Settlement.objects.filter(session_id=session_id).values().first(),
        "payouts": list(
            Payout.objects.filter(session_id=session_id)
            .order_by("participant__user_id")
            .values_list("participant__user_id", "amount", "gross")
        ),
    }


def _fields(model, *exclude: str) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if f.name not in exclude]


class _Rollback(Exception): ...


class ReplayError(Exception):
    """An event of the log cannot be applied to a fresh projection; names the event."""

    def __init__(self, event: Event, problem: str) -> None:
        super().__init__(f"event #{event.seq} ({event.type} v{event.version}) cannot be replayed: {problem}")
        self.event = event


def rebuild(session_id: str, events: Iterable[Event] | None = None) -> dict[str, Any]:
    """Replay the stream into a fresh projection with the same `apply`, snapshot it, and roll back.

    The stored projection is untouched; the result can be compared with `snapshot(session_id)`.
    """
    result: dict[str, Any] = {}
    try:
        with transaction.atomic():
            Session.objects.filter(id=session_id).delete()
            stream = domain.stream_name(session_id)
            for event in events if events is not None else iter_stream(stream):
                try:
                    projections.apply(event)
                except (projections.LegacyNameError, KeyError, ValueError, LookupError, DatabaseError) as exc:
                    raise ReplayError(event, str(exc) or type(exc).__name__) from exc
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
