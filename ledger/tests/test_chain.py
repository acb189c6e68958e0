"""The chain's text of an event's time, both ways."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from ledger import chain


@given(st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9999, 1, 1), timezones=st.just(dt.UTC)))
def test_an_event_time_reads_back_as_written(at):
    """`parse_at` gives back the instant `format_at` wrote, to the microsecond (the push's log rows read
    an event's time from its JSON shape this way)."""
    text = chain.format_at(at)
    assert text.endswith("Z") and len(text) == 27
    assert chain.parse_at(text) == at
