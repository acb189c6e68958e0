"""The one clock of the system. Tests freeze or move it; production reads the wall clock."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    """Current time, timezone-aware UTC, truncated to microseconds."""
    with _lock:
        if _frozen is not None:
            return _frozen
    return dt.datetime.now(dt.UTC)


def set_time(value: dt.datetime | None) -> None:
    """Freeze the clock at `value` (aware), or unfreeze with None."""
    global _frozen
    if value is not None and value.tzinfo is None:
        raise ValueError("the clock needs an aware datetime")
    with _lock:
        _frozen = value.astimezone(dt.UTC) if value is not None else None


def advance(seconds: float) -> dt.datetime:
    """Move a frozen clock forward."""
    global _frozen
    with _lock:
        if _frozen is None:
            raise RuntimeError("advance() needs a frozen clock")
        _frozen = _frozen + dt.timedelta(seconds=seconds)
        return _frozen


@contextlib.contextmanager
def frozen(value: dt.datetime) -> Iterator[None]:
    previous = _frozen
    set_time(value)
    try:
        yield
    finally:
        set_time(previous)
