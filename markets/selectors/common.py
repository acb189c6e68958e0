"""Small reads every page and answer shares: exact display numbers, prices, and the one way a request
names a session it may see."""

from __future__ import annotations

from decimal import Decimal

from markets import access, domain, sql
from markets.errors import NotFound
from markets.models import Session
from markets.selectors.prices import latest_prices

__all__ = ["latest_prices", "money_dec", "price_vector", "q_dec", "session_for"]


def session_for(session_id: object, user) -> Session:
    """The session a page, an API call or an export names, if it exists and `user` may see it
    (`markets.access`); NotFound or Forbidden otherwise, which each edge shows its own way."""
    sid = str(session_id)
    session = sql.get_by_pk(Session, sid) if domain.SESSION_ID.fullmatch(sid) else None
    if session is None:
        raise NotFound(f"Unknown session {sid[:64]!r}", "session_not_found")
    access.require_view(session, user)
    return session


def q_dec(base: int) -> Decimal:
    return domain.to_decimal(base, domain.QTY_DP)


def money_dec(base: int) -> Decimal:
    return domain.to_decimal(base, domain.MONEY_DP)


def price_vector(session: Session, prices: dict[str, int]) -> list[int] | None:
    if all(leg in prices for leg in session.legs):
        return [prices[leg] for leg in session.legs]
    return None
