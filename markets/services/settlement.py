"""Settlement: at given prices (manual) or at the oracle's fixing (timed sessions at t2, manual now),
closing what trading left open in the same command."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django.conf import settings

from markets import domain, projections, projections_actions
from markets.domain import actions, liquidation
from markets.errors import Conflict, DomainError, Forbidden
from markets.models import Quote, Session
from markets.selectors.prices import splits_of
from markets.services.command import _Command, _command, _get_session, _iso, _require_organiser, _retrying
from oracle import fixing as fixing_rules


@_retrying
def settle_session(
    actor,
    session_id: str,
    *,
    prices: Mapping[str, object] | None = None,
    fixing_at: dt.datetime | None = None,
    by_hand: bool | None = None,
):
    """Settle at S_t2: given prices (manual), or the oracle's fixing at t2 (timed) / now (manual).

    `fixing_at` lets a manual session settle at the fixing the organiser was shown (an instant in
    the past, after opening), so a tick arriving between preview and confirm changes nothing.
    A timed session whose rule looks past t2 (a centred window) waits until the window closes; settled by
    hand before then (`by_hand`: an organiser, `manage.py settle ID`; not the scheduler), its window ends
    at that moment, where ALLOW_MANUAL_SETTLE allows.
    payout_i = x_i . S_t2, and sum payouts == q . S_t2 is checked exactly before commit. A timed session
    whose trading has not been recorded as closed yet is closed in the same command (TradingClosed).
    """
    by_hand = actor is not None if by_hand is None else by_hand
    with _command(session_id) as cmd:
        session = cmd.session
        _require_organiser(session, actor)
        if session.status == Session.Status.SETTLED:
            raise Conflict(f"Session {session.id} is already settled", "already_settled")
        if session.status not in (Session.Status.OPEN, Session.Status.CLOSED):
            raise Conflict(f"Session {session.id} is not open: only an open session settles", "session_not_open")
        timed = session.end_mode == Session.EndMode.TIMED
        if timed and cmd.now < session.t2:
            raise Conflict(f"Session {session.id} settles by itself at t2 ({domain.when(session.t2)})", "not_due")
        if (prices is not None or not timed) and not settings.ALLOW_MANUAL_SETTLE:
            raise Forbidden("Manual settlement is disabled (ALLOW_MANUAL_SETTLE=false)", "manual_disabled")
        if prices is not None:
            price_vector, fixing = _manual_prices(session, prices)
        else:
            taken = _fixing(session, *_fixing_window(cmd, fixing_at, by_hand))
            price_vector = [taken.prices[leg] for leg in session.legs]
            fixing = taken.record(_iso)
        _close_trading(cmd)
        if session.status == Session.Status.OPEN:  # a manual session: what expired by now says so first
            expire_quotes(cmd, cmd.now)
        _settle(cmd, price_vector, fixing)
    return _get_session(session_id)


def _fixing_window(cmd: _Command, fixing_at: dt.datetime | None, by_hand: bool) -> tuple[dt.datetime, dt.datetime]:
    """(the instant the fixing is for, where its window ends): a timed session's t2 and the window's own
    end, or now when settled by hand before it; a manual session's moment (now, or the instant shown)."""
    session = cmd.session
    if session.end_mode != Session.EndMode.TIMED:
        at = cmd.now
        if fixing_at is not None:
            if fixing_at.tzinfo is None or not (session.opened_at or cmd.now) <= fixing_at <= cmd.now:
                raise DomainError("The fixing time must lie between the opening and now", "invalid_time")
            at = fixing_at
        return at, at
    closes = fixing_rules.window_end(session.fixing_rule, session.t2)
    if cmd.now >= closes:
        return session.t2, closes
    if not by_hand or not settings.ALLOW_MANUAL_SETTLE:
        raise Conflict(
            f"Session {session.id} waits for its fixing window to close at {domain.when(closes)}", "window_open"
        )
    return session.t2, cmd.now


def _fixing(session: Session, at: dt.datetime, end: dt.datetime) -> fixing_rules.Fixing:
    try:
        return fixing_rules.take_fixing(
            session.id, session.legs, at, session.fixing_rule, end, splits=splits_of(session)
        )
    except fixing_rules.MissingPrice as exc:
        raise Conflict(f"Cannot settle {session.id}: {exc}", "missing_price") from None


def _close_trading(cmd: _Command) -> None:
    """Record that trading in a timed session stopped at t2: the quotes that had expired by then expire
    (QuotesExpired), then its open RFQs and the quotes still live lapse (TradingClosed), as every reader
    showed them from t2 on (`Quote.status_at`, `RFQ.status_at`)."""
    session = cmd.session
    if session.status == Session.Status.OPEN and session.phase(cmd.now) == Session.Status.CLOSED:
        expire_quotes(cmd, session.t2)
        cmd.emit("TradingClosed", {"at": _iso(session.t2)})
        session.status = Session.Status.CLOSED


def expire_quotes(cmd: _Command, until: dt.datetime) -> int:
    """Record QuotesExpired for the session's live quotes whose expiry is at or before `until`."""
    ids = sorted(
        Quote.objects.filter(
            rfq__session_id=cmd.session.id, status=Quote.Status.LIVE, expires_at__lte=until
        ).values_list("id", flat=True)
    )
    if ids:
        cmd.emit("QuotesExpired", {"quote_ids": ids})
    return len(ids)


def _manual_prices(session: Session, prices: Mapping[str, object]) -> tuple[list[int], dict]:
    if not isinstance(prices, Mapping):
        raise DomainError("Prices map each leg to a price", "invalid_price")
    given = domain.leg_map(session.legs, prices, "price")
    missing = [leg for leg in session.legs if leg not in given]
    if missing:
        raise DomainError(f"No price given for {', '.join(missing)}", "missing_price")
    vector = [domain.parse_price(given[leg], f"Price of {leg}") for leg in session.legs]
    return vector, {"rule": {"rule": "manual"}, "at": None, "ticks": {}, "source": "manual"}


def _settle(cmd: _Command, prices: list[int], fixing: dict) -> None:
    session = cmd.session
    matrix = projections.holdings_by_user(session.id)
    cash = projections_actions.cash_of(session.id)  # corporate actions' cash, paid with the payout
    gross = actions.with_cash(domain.payouts(matrix, prices), cash)
    pool = domain.payout(session.q, prices) + sum(cash.values())
    cut = liquidation.haircut(gross, pool)  # nothing changes unless a payout is < 0
    paid = cut.paid
    domain.check_settlement_sum(paid, session.q, prices, sum(cash.values()))
    domain.check_payouts_not_negative(paid)
    cmd.emit(
        "SessionSettled",
        {
            "prices": dict(zip(session.legs, prices, strict=True)),
            "fixing": fixing,
            "payouts_by_id": {str(u): domain.money_str(v) for u, v in paid.items()},
            "total": domain.money_str(sum(paid.values())),
            "expected": domain.money_str(pool),
        }
        | ({"cash_by_id": {str(u): domain.money_str(v) for u, v in sorted(cash.items())}} if cash else {})
        | ({"haircut": _haircut_record(cut)} if cut.deficit else {}),
    )


def _haircut_record(cut: liquidation.Haircut) -> dict:
    """The waterfall: the deficit of the negative payouts, the factor applied to the positive ones, and
    each holder's payout before it (the event's payouts are after)."""
    return {
        "deficit": domain.money_str(cut.deficit),
        "factor": f"{cut.factor.numerator}/{cut.factor.denominator}",
        "gross_by_id": {str(u): domain.money_str(v) for u, v in cut.gross.items()},
    }


@_retrying
def _record_waiting(session_id: str, reason: str) -> None:
    with _command(session_id) as cmd:
        if cmd.session.status not in (Session.Status.OPEN, Session.Status.CLOSED):
            return
        _close_trading(cmd)
        if cmd.session.waiting_reason != reason[:500]:
            cmd.emit("SettlementWaiting", {"reason": reason[:500]})
